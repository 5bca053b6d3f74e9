"""Sequential chip Monte Carlo: add chips in batches until the confidence intervals are narrow enough.

Rule (recorded in ``manifest.json`` under ``"sequential"``): the run starts with ``n_chips`` chips (the first
look) and, after each look, adds ``chip_batch`` chips (the last batch cut at ``max_chips``), until at one
look every 95 % CI of the stopping family is at most ``target_ci_width`` wide (``high − low``, in metric
units), or ``max_chips`` chips have run. The family: on ``target_metric`` (default: the task's primary
metric), at every inference time, either the mean of every method (``target_pair`` empty) or the paired
difference ``A − B`` (``target_pair = [A, B]``). ``target_scope`` "chips": the chip-level percentile
bootstrap CI of each deployment (:func:`stats.summarize` / :func:`stats.paired`, the report's "CI (chips)");
"all": the hierarchical CI over training seeds × chips × examples (:func:`stats.hierarchical_summary`),
which chips alone cannot shrink below the example (and seed) part.

The batches are fixed in advance (``n_chips, n_chips + chip_batch, …, max_chips``), never chosen from the
data; chips are the same bits whether a run stops early or not, so the first chips of a fixed run are the
chips of a sequential run. Stopping when a CI first looks narrow enough (optional stopping) makes the final
CI slightly anti-conservative: its width is itself noisy and the rule stops on a low draw, so the coverage
is a little below the nominal 95 %. The manifest records every look.

A stopped run resumes like any other: finished chips are kept and the looks are recomputed from them
(deterministically: the bootstrap is seeded), so re-running the command gives the same chips and the same
record.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from . import stats
from .engine import MANIFEST, MonteCarloConfig, run_montecarlo
from .examples import load_per_example
from .files import atomic_write, lock_run_dir

__all__ = ["NOTE", "ci_widths", "look_schedule", "run_sequential"]

#: bootstrap resamples of the stopping rule's CIs (chip scope: the report's default)
N_BOOT_CHIPS = 9999
N_BOOT_ALL = 2000
NOTE = ("optional stopping: the run stopped at the first look whose CIs were all narrow enough, so the final CIs "
        "are slightly anti-conservative (coverage a little below 95 %); looks at fixed chip counts chosen before "
        "the run (n_chips, then every chip_batch chips, up to max_chips)")


def look_schedule(first: int, batch: int, last: int) -> list[int]:
    """Chip counts at which the rule looks: ``first, first + batch, …`` and ``last``."""
    looks = list(range(first, last, batch))
    return [*looks, last] if not looks or looks[-1] != last else looks


def _metric(config: MonteCarloConfig, df: pd.DataFrame) -> str:
    metric = config.target_metric or config.task_spec().metric
    available = sorted(stats.analog_rows(df)["metric"].unique())
    if metric not in available:
        raise ValueError(f"target_metric {metric!r} is not in the results ({available}); pass --target-metric")
    return metric


def ci_widths(df: pd.DataFrame, run_dir: Path, config: MonteCarloConfig) -> dict[str, float]:
    """Width (high − low) of every CI of the stopping family, keyed ``"<method or A−B> @ <t>"``."""
    metric = _metric(config, df)
    if config.target_scope == "all":
        data = load_per_example(run_dir)
        if config.target_pair:
            table = stats.hierarchical_paired(df, data, *config.target_pair, metric=metric, n_boot=N_BOOT_ALL)
            label = f"{config.target_pair[0]}−{config.target_pair[1]}"
            return {f"{label} @ {r.t_label}": r.ci_high - r.ci_low for r in table.itertuples()}
        table = stats.hierarchical_summary(df, data, metric=metric, n_boot=N_BOOT_ALL)
    elif config.target_pair:
        table = stats.paired(df, *_deployments(df, config.target_pair), metric=metric, n_boot=N_BOOT_CHIPS)
        label = f"{config.target_pair[0]}−{config.target_pair[1]}"
        return {f"{label} @ {r.t_label}": r.ci_high - r.ci_low for r in table.itertuples()}
    else:
        table = stats.summarize(df, metric=metric, n_boot=N_BOOT_CHIPS)
    return {f"{r.method} @ {r.t_label}": r.ci_high - r.ci_low for r in table.itertuples()}


def _deployments(df: pd.DataFrame, pair: list[str]) -> list[str]:
    """The deployment names of a chip-scope pair (a replicated method must be named by one replicate)."""
    present = set(stats.analog_rows(df)["method"])
    for name in pair:
        if name not in present:
            raise ValueError(f"target_pair {name!r} has several replicates; with target_scope 'chips' name one "
                             f"deployment of {sorted(present)}, or use --target-scope all")
    return pair


def run_sequential(
    config: MonteCarloConfig, out_dir: str | Path, workers: int | None = None, executor: str = "process",
    progress: bool = True,
) -> pd.DataFrame:
    """Run (or resume) ``config`` in the sequential mode (see the module docstring); returns the table."""
    config.validate()
    if config.target_ci_width is None or config.max_chips is None:
        raise ValueError("run_sequential needs target_ci_width and max_chips (--target-ci-width W --max-chips N)")
    out = Path(out_dir)
    looks: list[dict[str, Any]] = []
    for n in look_schedule(config.n_chips, config.chip_batch, config.max_chips):
        df = run_montecarlo(replace(config, n_chips=n), out, workers=workers, executor=executor, progress=progress)
        widths = ci_widths(df, out, config)
        looks.append({"chips": n, "max_width": max(widths.values())})
        if looks[-1]["max_width"] <= config.target_ci_width:
            return _finish(out, config, df, looks, widths, "target width reached")
    return _finish(out, config, df, looks, widths, "max_chips reached before the target width")


def _finish(out: Path, config: MonteCarloConfig, df: pd.DataFrame, looks: list[dict[str, Any]],
            widths: dict[str, float], stopped: str) -> pd.DataFrame:
    """Record the rule and its outcome in the manifest; return the table of the chips used."""
    record = {
        "rule": "add chip_batch chips until every CI of the family is at most target_ci_width wide, or max_chips",
        "target_ci_width": config.target_ci_width, "target_scope": config.target_scope,
        "target_metric": _metric(config, df),
        "family": f"paired difference {config.target_pair[0]} − {config.target_pair[1]}" if config.target_pair
        else "mean of every method", "first_look": config.n_chips, "chip_batch": config.chip_batch,
        "max_chips": config.max_chips, "chips_used": looks[-1]["chips"], "stopped": stopped, "looks": looks,
        "final_widths": widths, "note": NOTE,
    }
    with lock_run_dir(out):
        manifest = json.loads((out / MANIFEST).read_text())
        manifest["sequential"] = record
        atomic_write(out / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return df
