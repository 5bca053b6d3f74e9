"""PEFT's LoRA vs analog_peft's LoRA: training step and eval forward time, round-robin, on one base.

MiniLM-L6 (``--rpu ideal``: converted to analog tiles, or ``digital``), LoRA r=8 on Q and V with the task
head trained (PEFT: ``task_type=SEQ_CLS``), a batch of 16 × 48 tokens, forward + backward + AdamW step as
in the training loop (model in train mode, analog tiles in eval mode); the eval forward under ``no_grad``.
Medians of ``--steps`` after warm-up, the two methods timed in turn so load changes hit both alike.

    python benchmarks/bench_peft_lora.py [--steps 20] [--rpu ideal]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analog_peft.convert import convert  # noqa: E402
from analog_peft.methods import LoraConfig, attach  # noqa: E402
from analog_peft.models import load_classifier, load_tokenizer  # noqa: E402
from analog_peft.peft_bridge.adapter import attach_peft  # noqa: E402
from analog_peft.training.noise import NoiseInjector  # noqa: E402
from benchmarks._common import sst2_sentences, table, write_result  # noqa: E402

BASE = "minilm-l6"
PEFT_LORA = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["query", "value"]}


def make(method: str, rpu: str, batch: dict[str, torch.Tensor]) -> tuple[Any, Any, int]:
    """(train step, eval forward, trainable parameters) of ``method`` on a fresh base."""
    model = load_classifier(BASE, 2)
    if rpu != "digital":
        convert(model, rpu)
    adapted = attach(model, LoraConfig(r=8, alpha=16.0)) if method == "analog_peft" else attach_peft(model, PEFT_LORA)
    params = [p for p in adapted.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    injector = NoiseInjector(model, {"mode": "none"}, 0)
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def step() -> None:
        injector.train_mode()
        opt.zero_grad(set_to_none=True)
        adapted(**batch).loss.backward()
        opt.step()

    def forward() -> None:
        adapted.eval()
        with torch.no_grad():
            adapted(**inputs)

    return step, forward, sum(p.numel() for p in params)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rpu", default="ideal", choices=["digital", "ideal", "mapped"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    tok = load_tokenizer(BASE)
    batch = dict(tok(sst2_sentences(16), padding="max_length", truncation=True, max_length=48, return_tensors="pt"))
    batch["labels"] = torch.tensor([0, 1] * 8)
    methods = {m: make(m, args.rpu, batch) for m in ("analog_peft", "peft")}
    times: dict[str, dict[str, list[float]]] = {m: {"step": [], "forward": []} for m in methods}
    for i in range(args.steps + 2):  # two warm-up rounds
        for m, (step, forward, _) in methods.items():
            for kind, fn in (("step", step), ("forward", forward)):
                t0 = time.perf_counter()
                fn()
                if i >= 2:
                    times[m][kind].append(time.perf_counter() - t0)
    rows, out = [], {}
    for m, (_, _, n) in methods.items():
        step_s, fwd_s = statistics.median(times[m]["step"]), statistics.median(times[m]["forward"])
        rows.append((m, n, round(1000 * step_s, 1), round(1000 * fwd_s, 1)))
        out[m] = {"trainable": n, "step_ms": 1000 * step_s, "forward_ms": 1000 * fwd_s}
    print(table(["LoRA r=8 (Q,V)", "trainable params", "train step (ms)", "eval forward (ms)"], rows))
    write_result(f"peft_lora_{args.rpu}", {"steps": args.steps, "batch": "16 x 48", "results": out})
    return out


if __name__ == "__main__":
    main()
