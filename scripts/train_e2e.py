"""CPU-sized E2E run: a tiny GPT-2 (BPE tokenizer trained on E2E dev) fully fine-tuned on E2E dev, scored on test.

    .venv/bin/python scripts/train_e2e.py --out runs/e2e_tiny_gpt2

SmolLM2-135M works with the same config (``--model smollm2-135m --method lora``) but costs ~100 s per step of
8 examples on the 2 shared CPU cores here, so the measured run uses the tiny model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tiny_models import build_tiny_gpt2  # scripts/tiny_models.py

from analog_peft.training import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/e2e_tiny_gpt2")
    p.add_argument("--model", default="", help="model name/path (default: build the tiny GPT-2 under --out)")
    p.add_argument("--method", default="full")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--test-mrs", type=int, default=100)
    p.add_argument("--num-beams", type=int, default=1)
    args = p.parse_args(argv)
    out = Path(args.out)
    model = args.model or str(build_tiny_gpt2(out / "base_model", n_layer=4, n_embd=128, n_head=4, vocab_size=1000,
                                              max_mrs=None))
    config = TrainConfig(
        model=model, task="e2e", method=args.method, rpu="digital", seed=0, epochs=args.epochs, batch_size=16,
        max_length=96, lr=2e-3, schedule="linear", warmup_ratio=0.05, train_split="dev", eval_split="test",
        eval_examples=args.test_mrs, generation={"num_beams": args.num_beams, "max_new_tokens": 48, "batch_size": 25},
        out_dir=str(out / "run"), log_every=25, num_threads=1,
    )
    result = train(config)
    print(json.dumps(result.summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
