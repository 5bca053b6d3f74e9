"""Relative error of MiniLM-L6's last hidden state on analog chips (the figures quoted in the README).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/hidden_state_error.py [--chips 3] [--sentences 32]

``‖h_chip − h_digital‖ / ‖h_digital‖`` over the first SST-2 dev sentences, averaged over chips 0…n−1: the
``ideal`` preset without noise, then ``mapped`` + PCM at 1 s / 1 day / 1 year with and without global drift
compensation.
"""

from __future__ import annotations

import argparse

import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import convert
from analog_peft.models import load_classifier, load_tokenizer
from analog_peft.tasks import load_split

TIMES = {"1 s": 1.0, "1 day": 86400.0, "1 year": 365 * 86400.0}


@torch.no_grad()
def hidden(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return model.bert(**batch).last_hidden_state


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chips", type=int, default=3)
    ap.add_argument("--sentences", type=int, default=32)
    args = ap.parse_args()
    texts = list(load_split("sst2", "dev").texts[: args.sentences])
    batch = load_tokenizer("minilm-l6")(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    digital = load_classifier("minilm-l6", num_labels=2, seed=0).eval()
    ref = hidden(digital, batch)
    ideal = load_classifier("minilm-l6", num_labels=2, seed=0).eval()
    convert(ideal, "ideal")
    print(f"ideal, no noise: {rel(hidden(ideal, batch), ref):.1e}")
    mapped = load_classifier("minilm-l6", num_labels=2, seed=0).eval()
    convert(mapped, "mapped")
    for compensate in (True, False):
        chips = ChipProgrammer(mapped, "pcm", seed=0, compensate_drift=compensate)
        errs = {label: [] for label in TIMES}
        for chip in range(args.chips):
            chips.program(chip)
            for label, t in TIMES.items():
                chips.drift(t)
                errs[label].append(rel(hidden(mapped, batch), ref))
        chips.reset()
        mean = " / ".join(f"{sum(v) / len(v):.2f}" for v in errs.values())
        print(f"mapped + pcm, drift compensation {'on' if compensate else 'off'}: {mean} at {' / '.join(TIMES)} "
              f"(mean of {args.chips} chips)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
