"""(c) Training step time: StochGRASP vs GRASP vs LoRA vs the digital model with no adapter.

MiniLM-L6 (digital base), a batch of 16 × 64 tokens, forward + backward + AdamW step (plus the adapter's
regularisation loss, e.g. StochGRASP's KL), median of ``--steps`` steps after warm-up. Methods are
timed round-robin (one step of each in turn) so load changes on a shared machine hit all of them alike.

    python benchmarks/bench_training.py [--steps 10]
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

from analog_peft.methods import GraspConfig, LoraConfig, StochGraspConfig, attach  # noqa: E402
from analog_peft.models import load_classifier, load_tokenizer  # noqa: E402
from benchmarks._common import sst2_sentences, table, write_result  # noqa: E402

BASE = "minilm-l6"


def make_step(method: str, batch: dict[str, torch.Tensor], device: str) -> Any:
    """A closure doing one training step of ``method``."""
    model = load_classifier(BASE, 2).to(device)
    if method == "digital":
        params = [p for p in model.parameters() if p.requires_grad]
        module, reg = model, None
    else:
        cfg = {"grasp": GraspConfig(k=16), "stochgrasp": StochGraspConfig(k=16), "lora": LoraConfig()}[method]
        module = attach(model, cfg)
        params = [p for p in module.parameters() if p.requires_grad]
        reg = getattr(module, "regularization_loss", None)
    module.train()
    opt = torch.optim.AdamW(params, lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = module(**batch).loss
        if reg is not None:
            loss = loss + reg()
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in params)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    tok = load_tokenizer(BASE)
    batch = dict(tok(sst2_sentences(args.batch), padding="max_length", truncation=True, max_length=args.seq,
                     return_tensors="pt"))
    batch["labels"] = torch.arange(args.batch) % 2
    batch = {k: v.to(args.device) for k, v in batch.items()}
    methods = ["digital", "lora", "grasp", "stochgrasp"]
    steps, n_params = {}, {}
    for m in methods:
        steps[m], n_params[m] = make_step(m, batch, args.device)
        steps[m]()  # warm-up
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.steps):
        for m in methods:
            start = time.perf_counter()
            steps[m]()
            times[m].append(time.perf_counter() - start)
    med = {m: statistics.median(times[m]) for m in methods}
    rows = [[m, n_params[m], med[m] * 1e3, med[m] / med["digital"], med[m] / med["grasp"]] for m in methods]
    print(f"training step, {BASE}, batch {args.batch} × {args.seq} tokens (median of {args.steps})")
    print(table(["method", "trainable params", "step (ms)", "vs digital", "vs GRASP"], rows))
    result = {
        "config": {"base": BASE, "batch": args.batch, "seq": args.seq, "steps": args.steps, "device": args.device},
        "step_s": med, "trainable_params": n_params, "raw_s": times,
        "ratios": {"stochgrasp_vs_grasp": med["stochgrasp"] / med["grasp"],
                   **{f"{m}_vs_digital": med[m] / med["digital"] for m in methods}},
    }
    write_result("training", result)
    return result


if __name__ == "__main__":
    main()
