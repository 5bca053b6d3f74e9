"""StochGRASP done properly (issue 19, item 3): sampling forms, σ targets, injection, means vs one sample per chip.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/stochgrasp_study.py train --runs runs/sg     # the adapters
    OMP_NUM_THREADS=1 .venv/bin/python scripts/stochgrasp_study.py mc --runs runs/sg        # the chip Monte Carlo
    .venv/bin/python scripts/stochgrasp_study.py report --runs runs/sg --out docs/stochgrasp_variants

Every adapter is MiniLM-L6 on SST-2 (mean pooling, K = 16 groups per layer), one budget for all (``COMMON``).
The variants differ only in what :class:`~analog_peft.methods.StochGraspConfig` and the training noise say:
``gamma_form`` (Gaussian γ used as a divisor, Gaussian 1/γ, log-normal γ), ``sigma_target`` (a constant, or
derived from the PCM model at 1 day per group: ``weight_spread``), and device-noise injection. ``train`` runs
two trainings at a time (one torch thread each); a run with a ``summary.json`` is kept. ``mc`` scores every
adapter that trained (dev accuracy above ``--min-digital``) on the same chips (paired) under relative Gaussian
noise (a grid of per-layer η) and PCM, full SST-2 dev set; StochGRASP adapters once at their means and once
with one sample of (γ, β) per chip. ``report`` writes the tables and the data (CSV) from the run directories.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COMMON = {
    "model": "minilm-l6", "task": "sst2", "rpu": "ideal", "epochs": 2, "batch_size": 16, "eval_batch_size": 64,
    "max_length": 48, "schedule": "linear", "warmup_ratio": 0.06, "lr": 1e-2, "head_lr": 1e-2,
    "train_examples": 6000, "eval_examples": 0, "log_every": 10, "num_threads": 1, "progress": False,
}
K16 = {"k": 16}
PCM_1DAY_WS = {"device_model": "pcm", "t": 86400.0, "mode": "weight_spread"}
INJECT = {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.005}}  # σ = 0.005·max|W| per layer


def _sg(form: str, target, sigma_init: float, lam: float = 1e-3) -> dict:
    return {"method": "stochgrasp", "method_options": {**K16, "gamma_form": form, "sigma_target": target,
                                                       "sigma_init": sigma_init, "lam": lam}}


#: run name → (label, TrainConfig fields over COMMON)
RUNS: dict[str, tuple[str, dict]] = {
    "grasp": ("GRASP", {"method": "grasp", "method_options": K16}),
    "grasp_inj": ("GRASP + inj. (Gaussian η=0.005)", {"method": "grasp", "method_options": K16, "noise": INJECT}),
    "sg_gauss_c01": ("StochGRASP γ Gaussian (divisor), σ_t=0.1", _sg("gaussian", 0.1, 0.1)),
    "sg_inv_c01": ("StochGRASP 1/γ Gaussian, σ_t=0.1", _sg("gaussian_inverse", 0.1, 0.1)),
    "sg_logn_c01": ("StochGRASP γ log-normal, σ_t=0.1", _sg("lognormal", 0.1, 0.1)),
    "sg_gauss_ws": ("StochGRASP γ Gaussian (divisor), σ_t: PCM 1 d weight spread", _sg("gaussian", PCM_1DAY_WS, 0.3)),
    "sg_inv_ws": ("StochGRASP 1/γ Gaussian, σ_t: PCM 1 d weight spread", _sg("gaussian_inverse", PCM_1DAY_WS, 0.3)),
    "sg_logn_ws": ("StochGRASP γ log-normal, σ_t: PCM 1 d weight spread", _sg("lognormal", PCM_1DAY_WS, 0.3)),
}


def _run_name(name: str, seed: int) -> str:
    return f"{name}_s{seed}"


def _train_one(job: tuple[str, int, str]) -> str:
    import torch

    torch.set_num_threads(1)
    from analog_peft.training import TrainConfig, train

    name, seed, runs = job
    out = Path(runs) / _run_name(name, seed)
    if (out / "summary.json").is_file():
        return f"[{out.name}] kept"
    fields = RUNS[name][1]
    config = TrainConfig.from_dict({**COMMON, **fields, "seed": seed, "out_dir": str(out), "resume": out.is_dir()})
    result = train(config)
    return f"[{out.name}] {result.metric_name} = {result.best_metric:.4f} ({result.summary['wall_time_s']:.0f} s)"


def cmd_train(args: argparse.Namespace) -> None:
    names = args.only.split(",") if args.only else list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        sys.exit(f"unknown run(s) {unknown}; runs: {list(RUNS)}")
    jobs = [(n, s, args.runs) for s in args.seeds for n in names]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for line in pool.map(_train_one, jobs):
            print(line, flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the variants (resumable)")
    t.add_argument("--runs", default="runs/sg")
    t.add_argument("--only", default="", help="comma-separated subset of " + ",".join(RUNS))
    t.add_argument("--seeds", type=int, nargs="+", default=[0])
    t.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    {"train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
