"""Train the SST-2 side-by-side comparison on MiniLM-L6 and write its Markdown table.

    .venv/bin/python scripts/train_table.py --runs runs/sst2_table --out docs/training_table.md \
        --artifacts artifacts/sst2_minilm

Runs head-only, GRASP, StochGRASP (σ_target from PCM at t = 1 day), LoRA, BitFit, (IA)^3 and PARA one after
the other with the same seed, data subset and budget (a run whose ``summary.json`` exists is reused unless
``--force``), then writes the table from the runs' ``summary.json`` files and copies the GRASP and StochGRASP
runs (config, adapters, summary, log) to ``--artifacts`` for the Monte Carlo.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from analog_peft.training import TrainConfig, train

COMMON = {
    "model": "minilm-l6",
    "task": "sst2",
    "rpu": "ideal",
    "seed": 0,
    "epochs": 2,
    "batch_size": 16,
    "eval_batch_size": 64,
    "max_length": 48,
    "schedule": "linear",
    "warmup_ratio": 0.06,
    "head_lr": 1e-2,
    "train_examples": 6000,
    "eval_examples": 0,
    "log_every": 10,
    "num_threads": 1,
    "progress": False,
}
PCM_1DAY = {"device_model": "pcm", "t": 86400.0}
GAUSS_NOISE = {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.005}}  # σ = 0.005·max|W| per layer
PCM_NOISE = {"mode": "device", "device_model": "pcm", "t": 86400.0}  # a fresh PCM chip at 1 day every batch
MAPPED = {"rpu": "mapped"}  # PCM injection on the column-wise mapped tiles the Monte Carlo deploys on
RUNS: dict[str, dict] = {
    "head": {"method": "head", "lr": 1e-2},
    "grasp": {"method": "grasp", "method_options": {"k": 16}, "lr": 1e-2},
    "stochgrasp": {"method": "stochgrasp", "method_options": {"k": 16, "sigma_target": PCM_1DAY}, "lr": 1e-2},
    "stochgrasp_oe": {"method": "stochgrasp", "lr": 1e-2,
                      "method_options": {"k": 16, "sigma_target": {**PCM_1DAY, "mode": "output_error"}}},
    "stochgrasp_gs": {"method": "stochgrasp", "lr": 1e-2,
                      "method_options": {"k": 16, "n_draws": 8, "sigma_target": {**PCM_1DAY, "mode": "group_scale"}}},
    "stochgrasp_c01": {"method": "stochgrasp", "lr": 1e-2, "method_options": {"k": 16, "sigma_target": 0.01}},
    "grasp_pcm": {"method": "grasp", "method_options": {"k": 16}, "lr": 1e-2, "noise": PCM_NOISE, **MAPPED},
    "stochgrasp_pcm": {"method": "stochgrasp", "method_options": {"k": 16, "sigma_target": PCM_1DAY}, "lr": 1e-2,
                       "noise": PCM_NOISE, **MAPPED},
    "grasp_g005": {"method": "grasp", "method_options": {"k": 16}, "lr": 1e-2, "noise": GAUSS_NOISE},
    "stochgrasp_g005": {"method": "stochgrasp", "method_options": {"k": 16, "sigma_target": 0.01}, "lr": 1e-2,
                        "noise": GAUSS_NOISE},
    "lora": {"method": "lora", "lr": 5e-3},
    "bitfit": {"method": "bitfit", "lr": 1e-2},
    "ia3": {"method": "ia3", "lr": 1e-2},
    "para": {"method": "para", "lr": 5e-3},
}
LABELS = {"head": "head only (baseline)", "grasp": "GRASP (K=16)", "stochgrasp": "StochGRASP (K=16, σ_t: PCM 1 day, weight spread)",
          "stochgrasp_oe": "StochGRASP (K=16, σ_t: PCM 1 day, output error)",
          "stochgrasp_gs": "StochGRASP (K=16, σ_t: PCM 1 day, group scale)",
          "stochgrasp_c01": "StochGRASP (K=16, σ_t = 0.01 constant)",
          "grasp_pcm": "GRASP (K=16) + PCM 1-day noise injection",
          "stochgrasp_pcm": "StochGRASP (σ_t: PCM 1 day) + PCM 1-day noise injection",
          "grasp_g005": "GRASP (K=16) + Gaussian η=0.005 noise injection",
          "stochgrasp_g005": "StochGRASP (σ_t = 0.01) + Gaussian η=0.005 noise injection",
          "lora": "LoRA (r=8, Q,V)", "bitfit": "BitFit", "ia3": "(IA)^3", "para": "PARA (r=12)"}
ARTIFACT_FILES = ("train_config.toml", "summary.json", "log.jsonl", "adapter")


def run_all(runs_dir: Path, names: list[str], force: bool, overrides: dict) -> None:
    for name in names:
        out = runs_dir / name
        if (out / "summary.json").is_file() and not force:
            print(f"[{name}] reusing {out}", flush=True)
            continue
        config = TrainConfig.from_dict({**COMMON, **overrides, **RUNS[name], "out_dir": str(out), "resume": False})
        result = train(config)
        print(f"[{name}] {result.metric_name} = {result.best_metric:.4f}  ({result.summary['wall_time_s']:.0f} s)",
              flush=True)


def table(runs_dir: Path, names: list[str]) -> str:
    rows = []
    for name in names:
        path = runs_dir / name / "summary.json"
        if not path.is_file():
            continue
        s = json.loads(path.read_text())
        tp = s["trainable_params"]
        pooling = (s.get("head") or {}).get("pooling", "native (frozen pooler)")
        rows.append(
            f"| {LABELS.get(name, name)} | {pooling} | {100 * s['metric']:.2f} | {100 * s['last_metrics']['accuracy']:.2f} | "
            f"{s['last_metrics'].get('matthews_correlation', float('nan')):.4f} | "
            f"{tp['adapter']:,} | {tp['trainable']:,} | {tp['percent']:.4f} | {s['wall_time_s']:.0f} |"
        )
    head = (
        "| method | head pooling | dev metric best (×100) | dev acc. last (%) | dev MCC last | adapter params | "
        "trainable params (incl. head) | trainable % | wall time (s) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    return head + "\n" + "\n".join(rows) + "\n"


def copy_artifacts(runs_dir: Path, dest: Path, stochgrasp_run: str = "stochgrasp") -> None:
    for name, run in (("grasp", "grasp"), ("stochgrasp", stochgrasp_run)):
        src, dst = runs_dir / run, dest / name
        if not (src / "summary.json").is_file():
            continue
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for f in ARTIFACT_FILES:
            if (src / f).is_dir():
                shutil.copytree(src / f, dst / f)
            elif (src / f).is_file():
                shutil.copy2(src / f, dst / f)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/sst2_table")
    p.add_argument("--out", default="docs/training_table.md")
    p.add_argument("--artifacts", default="", help="copy the GRASP/StochGRASP runs here (e.g. artifacts/sst2_minilm)")
    p.add_argument("--stochgrasp-artifact", default="stochgrasp", help="which StochGRASP run to copy")
    p.add_argument("--methods", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    p.add_argument("--train-examples", type=int, default=COMMON["train_examples"])
    p.add_argument("--epochs", type=int, default=COMMON["epochs"])
    p.add_argument("--task", default=COMMON["task"], help="sst2 or cola (the table reports the task's metric)")
    p.add_argument("--table-only", action="store_true", help="do not train; only read the saved runs")
    p.add_argument("--force", action="store_true", help="retrain runs that already have a summary")
    args = p.parse_args(argv)
    names = [n for n in args.methods.split(",") if n]
    runs_dir = Path(args.runs)
    overrides = {"train_examples": args.train_examples, "epochs": args.epochs, "task": args.task}
    if not args.table_only:
        run_all(runs_dir, names, args.force, overrides)
    text = table(runs_dir, names)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    if args.artifacts:
        copy_artifacts(runs_dir, Path(args.artifacts), args.stochgrasp_artifact)
    return 0


if __name__ == "__main__":
    sys.exit(main())
