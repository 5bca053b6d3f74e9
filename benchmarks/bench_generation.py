"""Generation Monte Carlo cost: one chip × time of an E2E study vs decoding the same MRs on the digital model.

A GPT-2 of ``scripts/train_e2e.py``'s size (4 layers, 128 wide, BPE vocabulary of 1,000 trained on E2E dev;
random weights, so every MR decodes all ``--max-new-tokens``), ``--n`` E2E test MRs, greedy, batches of
``--batch-size``, LoRA r = 8 in the ``periphery`` deployment, ``mapped`` preset, PCM. The study side is the
engine's own per-chip work (``engine._Worker.chip_result``: programming once per chip, then per time point
drift + seeded batched decoding with the KV cache + the metrics), divided by the number of time points. The
digital side decodes the same MRs with the unconverted model (same batches, same ``generate`` call), with
and without computing the same metrics. Sides alternate per repeat, so a load change hits both.

    python benchmarks/bench_generation.py [--n 100] [--max-new-tokens 40] [--chips 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine, table, write_result  # noqa: E402


def _setup(root: Path, args: argparse.Namespace):
    import torch

    from analog_peft.methods import LoraConfig, attach, load_adapter
    from analog_peft.models import load_causal_lm
    from analog_peft.montecarlo.decoders import GenerationEvaluator
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, _Worker
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from tiny_models import build_tiny_gpt2

    base = str(build_tiny_gpt2(root / "base", n_layer=4, n_embd=128, n_head=4, vocab_size=1000, max_mrs=None))
    adapted = attach(load_causal_lm(base), LoraConfig(r=8))
    with torch.no_grad():
        for p in adapted.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    adapted.save_adapter(root / "lora")
    config = MonteCarloConfig(methods=[MethodSpec("lora", str(root / "lora"))], base_model=base, task="e2e",
                              split="test", max_examples=args.n, batch_size=args.batch_size, device_model="pcm",
                              rpu="mapped", times=[float(t) for t in args.times.split(",")],
                              metrics=args.metrics.split(","), max_new_tokens=args.max_new_tokens).normalized()
    config.validate()
    worker = _Worker(config, threads=1)
    evaluator = GenerationEvaluator.from_config(config)
    digital = load_adapter(load_causal_lm(base), root / "lora")  # the same adapter on the unconverted model
    return config, worker, evaluator, digital


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="E2E test MRs")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--times", default="1,86400,31536000")
    ap.add_argument("--metrics", default="BLEU,NIST")
    ap.add_argument("--chips", type=int, default=2, help="chips per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="(cpu only; accepted for run_all.py)")
    ap.add_argument("--out", default="generation", help="results/<out>.json")
    args = ap.parse_args(argv)
    import torch

    from analog_peft.tasks import e2e_metrics

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        config, worker, ev, digital = _setup(Path(tmp), args)
        n_times = len(config.times)
        dec, dec_metrics, study = [], [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            texts, _ = ev.generate(digital)
            t1 = time.perf_counter()
            e2e_metrics(texts, ev.refs, metrics=ev.metrics)
            t2 = time.perf_counter()
            dec.append(t1 - t0)
            dec_metrics.append(t2 - t0)
            for c in range(args.chips):
                t3 = time.perf_counter()
                worker.chip_result(100 * r + c)
                study.append((time.perf_counter() - t3) / n_times)
    d, dm, s = statistics.median(dec), statistics.median(dec_metrics), statistics.median(study)
    rows = [["digital decode", d, 1.0], ["digital decode + metrics", dm, dm / d],
            ["study, per chip × t", s, s / d]]
    print(f"generation MC: {args.n} MRs × ≤ {args.max_new_tokens} new tokens, batch {args.batch_size}, "
          f"{n_times} times, metrics {args.metrics}")
    print(table(["", "s", "vs digital decode"], rows))
    print(f"ratio vs digital decode + the same metrics: {s / dm:.3f}")
    result = {"config": vars(args), "machine": machine(), "digital_decode_s": d, "digital_decode_metrics_s": dm,
              "study_per_chip_t_s": s, "runs": {"decode": dec, "decode_metrics": dec_metrics, "study": study},
              "ratios": {"study_vs_decode": s / d, "study_vs_decode_and_metrics": s / dm}}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
