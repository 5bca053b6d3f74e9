"""Training jobs of the study scripts (``methods_study.py``, ``stochgrasp_study.py``): resumable runs, a few at a time.

A job is ``(out_dir, fields, root)``: ``fields`` is a ``TrainConfig`` dict without ``out_dir``/``resume``; a run
with a ``summary.json`` is kept, an interrupted one resumes from its trainer state. Each worker process uses one
torch thread (two processes with two threads each on two shared cores run 15–20× slower).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def train_one(job: tuple[str, dict, str]) -> str:
    """Train (or keep, or resume) one run; returns its log line."""
    import torch

    torch.set_num_threads(1)
    from analog_peft.training import TrainConfig, train

    out_dir, fields, root = job
    out = Path(out_dir)
    label = out.relative_to(root)
    if (out / "summary.json").is_file():
        return f"[{label}] kept"
    result = train(TrainConfig.from_dict({**fields, "out_dir": str(out), "resume": out.is_dir()}))
    return f"[{label}] {result.metric_name} = {result.best_metric:.4f} ({result.summary['wall_time_s']:.0f} s)"


def train_all(jobs: list[tuple[str, dict, str]], workers: int) -> None:
    """Run ``jobs`` on ``workers`` processes, printing each run's line as it finishes."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for line in pool.map(train_one, jobs):
            print(line, flush=True)
