"""Methods side by side on SST-2, MRPC, STS-B and CoLA (issue 19, item 1): a learning-rate sweep per method on
one task and seed 0 (``SWEEP_TASK``), then three seeds per task at each method's best rate, then the table
(mean ± std over seeds, each task's GLUE metric).

    .venv/bin/python scripts/methods_study.py plan                                  # runs and CPU estimate
    OMP_NUM_THREADS=1 .venv/bin/python scripts/methods_study.py sweep               # SST-2, seed 0, every rate
    OMP_NUM_THREADS=1 .venv/bin/python scripts/methods_study.py seeds --task cola   # seeds 0-2 at the best rate
    .venv/bin/python scripts/methods_study.py report --export runs/methods --out docs/methods_side_by_side

Every run is MiniLM-L6 with the checkpoint's mean pooling (``pooling = "auto"``) on the digital (``ideal``)
base; the budgets (``BUDGETS``) are sized for a 2-core CPU. The best rate is the one with the best SST-2 dev
metric on seed 0 — chosen on a dev set the table reports (the GLUE convention; it flatters every method alike)
and carried to the other tasks. Runs are resumable (a run with a ``summary.json`` is kept; an interrupted one resumes from its trainer
state), two at a time with one torch thread each. ``report`` reads only the runs' ``summary.json`` files, which
``--export`` copies (with configs and logs) to ``docs/methods_side_by_side/runs/`` — the committed data.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from study_jobs import train_all  # scripts/ is on sys.path as the script's folder

COMMON = {
    "model": "minilm-l6", "rpu": "ideal", "batch_size": 16, "eval_batch_size": 64, "schedule": "linear",
    "warmup_ratio": 0.06, "eval_examples": 0, "log_every": 20, "num_threads": 1, "progress": False,
}
#: task → budget (train_examples 0 = the full train set) and the seconds one run took here (1 thread)
BUDGETS: dict[str, dict] = {
    "sst2": {"train_examples": 6000, "epochs": 2, "max_length": 48},
    "mrpc": {"train_examples": 0, "epochs": 2, "max_length": 128},
    "stsb": {"train_examples": 3000, "epochs": 2, "max_length": 128},
    "cola": {"train_examples": 0, "epochs": 2, "max_length": 48},
}
SWEEP_TASK = "sst2"
#: measured GRASP wall times (s, 1 thread on the 2-core machine) per training example-epoch, for ``plan``
SECONDS_PER_EXAMPLE = {"sst2": 0.045, "mrpc": 0.20, "stsb": 0.20, "cola": 0.045}
TRAIN_SIZES = {"sst2": 67349, "mrpc": 3668, "stsb": 5749, "cola": 8551}
INJECT = {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.005}}
#: method → (label, TrainConfig fields, learning rates swept; the head's rate is the adapter's)
METHODS: dict[str, tuple[str, dict, tuple[float, ...]]] = {
    "head": ("head only", {"method": "head"}, (3e-3, 1e-2, 3e-2)),
    "grasp": ("GRASP (K=16)", {"method": "grasp", "method_options": {"k": 16}}, (3e-3, 1e-2, 3e-2)),
    "stochgrasp": ("StochGRASP (K=16, log-normal γ, σ_t=0.1)",
                   {"method": "stochgrasp", "method_options": {"k": 16, "gamma_form": "lognormal",
                                                               "sigma_target": 0.1, "sigma_init": 0.1}},
                   (3e-3, 1e-2, 3e-2)),
    "grasp_inj": ("GRASP + Gaussian η=0.005 injection", {"method": "grasp", "method_options": {"k": 16},
                                                         "noise": INJECT}, (3e-3, 1e-2, 3e-2)),
    "lora": ("LoRA (r=8, Q,V)", {"method": "lora"}, (1e-3, 3e-3, 1e-2)),
    "bitfit": ("BitFit", {"method": "bitfit"}, (3e-3, 1e-2, 3e-2)),
    "ia3": ("(IA)^3", {"method": "ia3"}, (3e-3, 1e-2, 3e-2)),
    "para": ("PARA (r=12)", {"method": "para"}, (1e-3, 3e-3, 1e-2)),
    "full": ("full fine-tuning", {"method": "full"}, (2e-5, 5e-5, 1e-4)),
}
SEEDS = (0, 1, 2)


def run_name(task: str, method: str, lr: float, seed: int) -> str:
    return f"{task}/{method}_lr{lr:g}_s{seed}"


def _config_fields(task: str, method: str, lr: float, seed: int) -> dict:
    fields = METHODS[method][1]
    head_lr = lr if method != "full" else 1e-3  # full FT: the new head learns at an adapter-like rate
    return {**COMMON, **BUDGETS[task], **fields, "task": task, "lr": lr, "head_lr": head_lr, "seed": seed}


SMOKE = {"train_examples": 64, "eval_examples": 64, "epochs": 1}


def _job(task: str, method: str, lr: float, seed: int, runs: str, smoke: bool) -> tuple[str, dict, str]:
    return (str(Path(runs) / run_name(task, method, lr, seed)),
            {**_config_fields(task, method, lr, seed), **(SMOKE if smoke else {})}, runs)


def _methods(args: argparse.Namespace) -> list[str]:
    names = [m for m in args.methods.split(",") if m] if args.methods else list(METHODS)
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        sys.exit(f"unknown method(s) {unknown}; methods: {', '.join(METHODS)}")
    return names


def _tasks(args: argparse.Namespace) -> list[str]:
    tasks = [t for t in args.task.split(",") if t]
    unknown = sorted(set(tasks) - set(BUDGETS))
    if unknown:
        sys.exit(f"unknown task(s) {unknown}; tasks: {', '.join(BUDGETS)}")
    return tasks


def _run(jobs: list, workers: int) -> None:
    train_all([_job(*j) for j in jobs], workers)


def _summary(runs: Path, task: str, method: str, lr: float, seed: int) -> dict | None:
    path = runs / run_name(task, method, lr, seed) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def best_lr(runs: Path, method: str) -> float | None:
    """The swept rate with the best seed-0 dev metric on ``SWEEP_TASK``; ``None`` until the sweep has finished."""
    scores = {lr: _summary(runs, SWEEP_TASK, method, lr, 0) for lr in METHODS[method][2]}
    if any(s is None for s in scores.values()):
        return None
    return max(scores, key=lambda lr: (scores[lr]["metric"], -lr))


def cmd_sweep(args: argparse.Namespace) -> None:
    _run([(SWEEP_TASK, m, lr, 0, args.runs, args.smoke) for m in _methods(args) for lr in METHODS[m][2]],
         args.workers)


def cmd_seeds(args: argparse.Namespace) -> None:
    jobs = []
    for t in _tasks(args):
        for m in _methods(args):
            lr = best_lr(Path(args.runs), m)
            if lr is None:
                sys.exit(f"{m}: the learning-rate sweep has not finished; run `sweep --methods {m}` first")
            jobs += [(t, m, lr, s, args.runs, args.smoke) for s in SEEDS]
    _run(jobs, args.workers)


def cmd_plan(args: argparse.Namespace) -> None:
    total = 0.0
    for t in _tasks(args):
        b = BUDGETS[t]
        n = b["train_examples"] or TRAIN_SIZES[t]
        per_run = n * b["epochs"] * SECONDS_PER_EXAMPLE[t]
        runs = sum(len(SEEDS) + (len(METHODS[m][2]) - 1 if t == SWEEP_TASK else 0) for m in _methods(args))
        total += runs * per_run
        print(f"{t}: {runs} runs × ≈{per_run / 60:.0f} min (GRASP-like; full FT costs more)")
    print(f"total ≈ {total / 3600:.1f} CPU-hours ({total / 3600 / args.workers:.1f} h on {args.workers} workers)")


def table(runs: Path, tasks: list[str], methods: list[str]) -> tuple[str, pd.DataFrame]:
    rows, pending = [], []
    for t in tasks:
        for m in methods:
            lr = best_lr(runs, m)
            if lr is None:
                pending.append(f"{t}/{m} (sweep)")
                continue
            sums = [s for s in (_summary(runs, t, m, lr, seed) for seed in SEEDS) if s is not None]
            if len(sums) < len(SEEDS):
                pending.append(f"{t}/{m} ({len(SEEDS) - len(sums)} seed{'s' if len(SEEDS) - len(sums) > 1 else ''})")
            if not sums:
                continue
            vals = np.array([s["metric"] for s in sums])
            rows.append({"task": t, "method": m, "label": METHODS[m][0], "metric": sums[0]["metric_name"], "lr": lr,
                         "seeds": len(vals), "mean": vals.mean(), "std": vals.std(ddof=1) if len(vals) > 1 else np.nan,
                         "trainable": sums[0]["trainable_params"]["trainable"],
                         "wall_s": float(np.mean([s["wall_time_s"] for s in sums])),
                         "sweep": {f"{x:g}": _summary(runs, SWEEP_TASK, m, x, 0)["metric"] for x in METHODS[m][2]}})
    df = pd.DataFrame(rows)
    if df.empty:
        return f"*No method has finished its {SWEEP_TASK} learning-rate sweep yet (`sweep`).*\n", df
    out = []
    for t, g in df.groupby("task", sort=False):
        b = BUDGETS[t]
        size = f"{b['train_examples']:,}" if b["train_examples"] else "all"
        out += [f"\n**{t.upper()}** ({g['metric'].iloc[0]}, ×100; {size} training examples × {b['epochs']} epochs, "
                f"max length {b['max_length']}, full dev set)\n",
                "| method | lr (best on SST-2) | seeds | dev metric mean ± std | SST-2 seed-0 sweep (lr: acc.) | trainable | "
                "wall (s) |",
                "|---|---:|---:|---:|---|---:|---:|"]
        for r in g.itertuples():
            std = f" ± {100 * r.std:.2f}" if not np.isnan(r.std) else ""
            sweep = ", ".join(f"{k}: {100 * v:.2f}" for k, v in r.sweep.items())
            out.append(f"| {r.label} | {r.lr:g} | {r.seeds} | {100 * r.mean:.2f}{std} | {sweep} | {r.trainable:,} | "
                       f"{r.wall_s:.0f} |")
    if pending:
        out.append(f"\n*Not yet run (of {len(SEEDS)} seeds at the best rate):* " + ", ".join(pending) + ".")
    used = {run_name(r.task, r.method, r.lr, seed) for r in df.itertuples() for seed in SEEDS}
    used |= {run_name(SWEEP_TASK, m, lr, 0) for m in methods for lr in METHODS[m][2]}
    probes = [(p.parent.relative_to(runs).as_posix(), json.loads(p.read_text()))
              for t in tasks for p in sorted((runs / t).glob("*/summary.json"))]
    probes = [(name, s) for name, s in probes if name not in used]
    if probes:
        out.append("\n*Other runs (probes, not at the best rate):* " + ", ".join(
            f"{name}: {s['metric_name']} {100 * s['metric']:.2f}" for name, s in probes) + ".")
    return "\n".join(out) + "\n", df.drop(columns="sweep")


EXPORT_FILES = ("summary.json", "train_config.toml", "log.jsonl")
#: adapters up to this size are committed with their run (full fine-tuning's 90 MB are not)
ADAPTER_EXPORT_BYTES = 2_000_000


def cmd_report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    runs = out / "runs"
    if args.export:
        src = Path(args.export)
        for s in sorted(src.glob("*/*/summary.json")):
            dest = runs / s.parent.relative_to(src)
            dest.mkdir(parents=True, exist_ok=True)
            for f in EXPORT_FILES:
                if (s.parent / f).is_file():
                    shutil.copy2(s.parent / f, dest / f)
            best = s.parent / "adapter" / "best"
            if best.is_dir() and sum(f.stat().st_size for f in best.iterdir()) <= ADAPTER_EXPORT_BYTES:
                shutil.rmtree(dest / "adapter", ignore_errors=True)
                shutil.copytree(best, dest / "adapter" / "best")  # the robustness study deploys these
    text, df = table(runs, _tasks(args), _methods(args))
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "methods.csv", index=False)
    (out / "tables.md").write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("plan", cmd_plan), ("sweep", cmd_sweep), ("seeds", cmd_seeds), ("report", cmd_report)):
        s = sub.add_parser(name)
        s.set_defaults(fn=fn)
        s.add_argument("--task", default=",".join(BUDGETS), help="comma-separated subset of " + ",".join(BUDGETS))
        s.add_argument("--methods", default="", help="comma-separated subset of " + ",".join(METHODS))
        s.add_argument("--workers", type=int, default=2)
        if name == "report":
            s.add_argument("--out", default="docs/methods_side_by_side", help="reads OUT/runs (the committed data)")
            s.add_argument("--export", default="", help="first copy these runs' summaries, configs, logs to OUT/runs")
        else:
            s.add_argument("--runs", default="runs/methods")
            s.add_argument("--smoke", action="store_true", help=f"tiny budgets ({SMOKE}): checks the pipeline only")
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
