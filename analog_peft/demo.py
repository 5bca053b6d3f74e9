"""The main job: a small but real end-to-end run on the real MiniLM-L6 weights.

convert → program chips → report. Run with ``make demo`` (or ``analog-peft demo``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import calibrate_input_ranges, convert
from analog_peft.models import load_classifier, load_tokenizer
from analog_peft.tasks import get_task, load_split


def output_error(reference: torch.Tensor, output: torch.Tensor) -> float:
    """Relative error ``‖out − ref‖ / ‖ref‖`` of a model output."""
    return float((output - reference).norm() / reference.norm())


def run_conversion_demo(
    out_dir: str | Path,
    model_name: str = "minilm-l6",
    device: str = "pcm",
    n_chips: int = 3,
    times: tuple[float, ...] = (1.0, 86400.0, 31536000.0),
    n_sentences: int = 32,
    seed: int = 0,
    rpu: str = "mapped",
) -> dict:
    """Convert ``model_name`` (preset ``rpu``), program ``n_chips`` chips, print output errors."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(model_name)
    data = load_split("sst2", "dev", max_examples=n_sentences, seed=seed)
    batch = tok(list(data.texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
    model = load_classifier(model_name, num_labels=2, seed=seed)
    base = model.base_model
    with torch.no_grad():
        reference = base(**batch).last_hidden_state
    report = convert(model, rpu)
    print(report.table())
    report.to_json(str(out / "conversion_report.json"))
    calibrate_input_ranges(base, [batch])
    chips = ChipProgrammer(model, device, seed=seed)
    rows = []
    for chip in range(n_chips):
        start = time.perf_counter()
        chips.program(chip)
        for t in times:
            chips.drift(t)
            with torch.no_grad(), chips.seeded_forward("demo"):
                err = output_error(reference, base(**batch).last_hidden_state)
            rows.append({"chip": chip, "t": t, "relative_output_error": err})
            print(f"chip {chip}  t={t:>10.0f} s  relative error of the last hidden state: {err:.4f}")
        print(f"chip {chip} took {time.perf_counter() - start:.2f} s")
    chips.reset()
    summary = {"model": model_name, "device": device, "rows": rows, "conversion": report.to_dict()["summary"]}
    (out / "chips.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{report.summary()}\nwrote {out / 'conversion_report.json'} and {out / 'chips.json'}")
    return summary


__all__ = ["run_conversion_demo", "output_error", "get_task"]
