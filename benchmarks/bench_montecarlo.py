"""(b) Monte Carlo evaluation throughput and (d) peak memory vs the plain digital forward.

MiniLM-L6 classifier, ``--n`` SST-2 dev sentences in batches of 64 (as the engine evaluates them). Throughput: chip × time-point
evaluations per second of the ``periphery`` deployment on the ``mapped`` preset (``drift(t)`` + seeded
forward of the whole eval set, as ``engine._Worker.chip_rows`` does; programming once per chip, amortised
over the time points) vs forwards per second of the digital model on the same data. Memory: each side runs
in its own process (``--child``) and reports its peak RSS; the base line is the interpreter + libraries
(imports only). ``analog_low_memory`` is the same run with ``ChipProgrammer(keep_state=False)`` (each chip's
draws re-made per time point instead of kept: the memory/time trade of ``--low-memory``).

    python benchmarks/bench_montecarlo.py [--n 64] [--chips 2] [--times 1,86400,31536000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import peak_rss_mb, run_child, sst2_sentences, table, write_result  # noqa: E402

BASE = "minilm-l6"


def _eval_set(n: int, batch_size: int = 64, max_length: int = 128):
    """``n`` SST-2 dev sentences in batches of ``batch_size`` (the engine's default), each padded to its longest."""
    from analog_peft.models import load_tokenizer
    from analog_peft.montecarlo.engine import EvalSet

    tok = load_tokenizer(BASE)
    sentences = sst2_sentences(n)
    batches = [dict(tok(sentences[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")) for i in range(0, n, batch_size)]
    return EvalSet(batches, [0] * n, "bench")


def child(kind: str, n: int, chips: int, times: list[float], device: str) -> dict:
    """One measurement in this (fresh) process."""
    import analog_peft.chips  # noqa: F401  (import cost is part of the base line)
    from analog_peft.deploy import deploy
    from analog_peft.montecarlo.engine import score

    base_mb = peak_rss_mb()
    if kind == "imports":
        return {"peak_rss_mb": base_mb}
    eval_set = _eval_set(n)
    eval_set.batches = [{k: v.to(device) for k, v in b.items()} for b in eval_set.batches]
    if kind == "digital":
        from analog_peft.models import load_classifier

        model = load_classifier(BASE, 2).to(device)
        score(model, eval_set)  # warm-up
        reps = chips * len(times)
        start = time.perf_counter()
        for _ in range(reps):
            score(model, eval_set)
        per_eval = (time.perf_counter() - start) / reps
        return {"per_eval_s": per_eval, "evals": reps, "peak_rss_mb": peak_rss_mb()}
    from analog_peft.chips import ChipProgrammer

    model = deploy(BASE, None, "periphery", "mapped", 2).model.to(device)
    cp = ChipProgrammer(model, "pcm", seed=0, keep_state=kind != "analog_low_memory")
    score(model, eval_set, cp.program(99).drift(times[0]))  # warm-up
    prog = drift = fwd = 0.0
    for k in range(chips):
        t0 = time.perf_counter()
        cp.program(k)
        prog += time.perf_counter() - t0
        for t in times:
            t0 = time.perf_counter()
            cp.drift(t)
            t1 = time.perf_counter()
            score(model, eval_set, cp)
            drift += t1 - t0
            fwd += time.perf_counter() - t1
        cp.reset()
    evals = chips * len(times)
    return {"per_eval_s": (prog + drift + fwd) / evals, "program_per_chip_s": prog / chips,
            "drift_per_eval_s": drift / evals, "forward_per_eval_s": fwd / evals, "evals": evals,
            "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="eval sentences (batches of 64)")
    ap.add_argument("--chips", type=int, default=2)
    ap.add_argument("--times", default="1,86400,31536000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", choices=["imports", "digital", "analog", "analog_low_memory"])
    ap.add_argument("--out", default="montecarlo", help="results/<out>.json")
    ap.add_argument("--repeats", type=int, default=1, help="processes per side (medians reported)")
    args = ap.parse_args(argv)
    times = [float(t) for t in args.times.split(",")]
    if args.child:
        print(json.dumps(child(args.child, args.n, args.chips, times, args.device)))
        return {}
    common = ["--n", str(args.n), "--chips", str(args.chips), "--times", args.times, "--device", args.device]
    here = str(Path(__file__).resolve())
    kinds = ("imports", "digital", "analog", "analog_low_memory")
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for _ in range(args.repeats):  # round-robin, so a load change hits every side alike
        for k in kinds:
            runs[k].append(run_child([here, "--child", k, *common]))
    # peak RSS varies by ~±50 MiB run to run (allocator arenas); medians over the repeats
    res = {k: {key: statistics.median(r[key] for r in rs) for key in rs[0]} | {"runs": rs} for k, rs in runs.items()}
    d, a, lm, base = res["digital"], res["analog"], res["analog_low_memory"], res["imports"]["peak_rss_mb"]
    ratio_time = a["per_eval_s"] / d["per_eval_s"]
    mem_d, mem_a, mem_lm = (r["peak_rss_mb"] - base for r in (d, a, lm))
    rows = [
        ["digital forward", d["per_eval_s"], 1 / d["per_eval_s"], 1.0, d["peak_rss_mb"], mem_d, 1.0],
        ["MC chip×t eval", a["per_eval_s"], 1 / a["per_eval_s"], ratio_time, a["peak_rss_mb"], mem_a, mem_a / mem_d],
        ["MC chip×t eval, low memory", lm["per_eval_s"], 1 / lm["per_eval_s"], lm["per_eval_s"] / d["per_eval_s"],
         lm["peak_rss_mb"], mem_lm, mem_lm / mem_d],
    ]
    print(f"Monte Carlo, {BASE} mapped/pcm, {args.n} sentences, {args.chips} chips × {len(times)} times "
          f"(import base line {base:.0f} MiB)")
    print(table(["", "s / eval", "evals / s", "time vs digital", "peak RSS (MiB)", "above imports (MiB)",
                 "memory vs digital"], rows))
    print(f"analog breakdown per eval: program/chip amortised {a['program_per_chip_s'] / len(times):.3f} s, "
          f"drift {a['drift_per_eval_s']:.3f} s, forward {a['forward_per_eval_s']:.3f} s")
    result = {"config": {"base": BASE, "preset": "mapped", "device_model": "pcm", "n": args.n,
                         "chips": args.chips, "times_s": times, "device": args.device, "repeats": args.repeats},
              "digital": d, "analog": a, "analog_low_memory": lm, "imports_peak_rss_mb": base,
              "ratios": {"time_per_eval": ratio_time, "forward_only": a["forward_per_eval_s"] / d["per_eval_s"],
                         "memory_above_imports": mem_a / mem_d, "peak_rss": a["peak_rss_mb"] / d["peak_rss_mb"],
                         "low_memory_time_per_eval": lm["per_eval_s"] / d["per_eval_s"],
                         "low_memory_memory_above_imports": mem_lm / mem_d}}
    write_result(args.out, result)
    return result


if __name__ == "__main__":
    main()
