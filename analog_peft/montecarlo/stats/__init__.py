"""Statistics over chip Monte Carlo results (methods.md §7).

Input is the engine's tidy table: one row per measurement with columns
``run, method, task, device, deployment, chip, t, t_label, metric, value``. Rows with ``chip == -1`` or
``device == "digital"`` are the noise-free digital reference of each method; every other row is one simulated
chip at one inference time.

Definitions used throughout (also printed in the report):

- **CI of the mean** [choice]: percentile bootstrap (``scipy.stats.bootstrap(method="percentile")``) with
  ``n_boot`` resamples and ``numpy.random.default_rng(seed)``; every group uses the same ``seed``, so the
  numbers are reproducible and equal a direct scipy call on the chip values sorted by chip id (so the
  result does not depend on the row order of the table). Percentile rather than BCa because BCa is undefined
  for the (frequent) groups where every chip scores the same. Groups with ``n < 2`` get ``NaN``; groups with
  zero variance get ``(mean, mean)``.
- **Percentiles**: ``numpy.percentile`` with numpy's default (linear) method.
- **Yield** [choice]: fraction of chips with ``value >= threshold``. An absolute ``threshold`` is used as is; a
  ``relative_threshold`` r means ``value >= r * digital``, where ``digital`` is the method's own noise-free
  score on the same metric (e.g. r = 0.99: the chip keeps at least 99 % of its digital score).
- **Paired comparison**: methods are matched on the chip id (same seed ⇒ same chip). Per group: mean of
  ``a - b``, its percentile-bootstrap CI, the two-sided Wilcoxon signed-rank p-value of ``a - b``
  (``scipy.stats.wilcoxon`` defaults: zero differences are dropped), and the fraction of chips with ``a > b``.
  If every difference is zero the p-value is reported as 1.0 (no evidence of a difference) instead of NaN.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "TIME_UNITS",
    "analog_rows",
    "bootstrap_ci",
    "digital_reference",
    "format_time",
    "paired",
    "paired_all",
    "parse_time",
    "summarize",
]

# [choice] a month is 30 days and a year 365 days; ``format_time`` tolerates 2 % so 1/12 year is also "1mo".
TIME_UNITS: dict[str, float] = {
    "y": 365 * 86400.0,
    "mo": 30 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "min": 60.0,
    "s": 1.0,
}
_TIME_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)
_UNIT_ALIASES = {"": "s", "sec": "s", "m": "min", "hr": "h", "day": "d", "wk": "w", "month": "mo", "yr": "y"}
_REF_KEYS = ("run", "task", "method", "metric")

SUMMARY_STATS = ("n", "mean", "std", "min", "p5", "p25", "median", "p75", "p95", "max", "ci_low", "ci_high")


# ----------------------------------------------------------------------------------------------- time labels
def parse_time(label: str | float) -> float:
    """Seconds for a time label such as ``"1s"``, ``"1h"``, ``"1d"``, ``"1w"``, ``"1mo"``, ``"1y"`` or ``"90"``."""
    if isinstance(label, int | float | np.number):
        return float(label)
    match = _TIME_RE.match(str(label))
    if match is None:
        raise ValueError(f"Cannot parse time label {label!r}; expected e.g. '1s', '1h', '1d', '1w', '1mo', '1y'.")
    number, unit = float(match.group(1)), match.group(2).lower()
    unit = _UNIT_ALIASES.get(unit, unit)
    if unit not in TIME_UNITS:
        raise ValueError(f"Unknown time unit {unit!r} in {label!r}; known: {', '.join(TIME_UNITS)}.")
    return number * TIME_UNITS[unit]


def format_time(seconds: float, rtol: float = 0.02) -> str:
    """Short label for a duration in seconds: ``3600 -> "1h"``, ``2592000 -> "1mo"``, ``5400 -> "1.5h"``."""
    seconds = float(seconds)
    if seconds <= 0:
        return f"{seconds:g}s"
    for unit, size in TIME_UNITS.items():
        q = seconds / size
        if q >= 1 - rtol and abs(q - round(q)) <= rtol * q:
            return f"{round(q)}{unit}"
    for unit, size in TIME_UNITS.items():
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


# -------------------------------------------------------------------------------------------- table helpers
def _is_digital(df: pd.DataFrame) -> pd.Series:
    mask = df["chip"] == -1
    if "device" in df.columns:
        mask |= df["device"] == "digital"
    return mask


def analog_rows(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The per-chip rows (digital reference removed), optionally restricted to one metric."""
    out = df.loc[~_is_digital(df)]
    return out if metric is None else _select_metric(out, metric)


def _select_metric(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    out = df.loc[df["metric"] == metric]
    if out.empty:
        raise ValueError(f"No rows for metric {metric!r}; available: {sorted(df['metric'].unique())}.")
    return out


def digital_reference(df: pd.DataFrame) -> pd.DataFrame:
    """Digital (noise-free) value per ``(run, task, method, metric)`` (keys that exist), column ``digital``.

    Several digital rows for one key (e.g. one per deployment) are averaged.
    """
    keys = [k for k in _REF_KEYS if k in df.columns]
    ref = df.loc[_is_digital(df)]
    return ref.groupby(keys, sort=False, dropna=False)["value"].mean().rename("digital").reset_index()


def bootstrap_ci(x: np.ndarray, ci: float = 0.95, n_boot: int = 9999, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``x`` (NaN for n < 2; ``(mean, mean)`` for constant ``x``)."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return float("nan"), float("nan")
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    res = sps.bootstrap(
        (x,), np.mean, n_resamples=n_boot, confidence_level=ci, method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _as_list(by: str | Iterable[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _group_keys(df: pd.DataFrame, by: str | Iterable[str], metric: str | None) -> list[str]:
    keys = _as_list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise KeyError(f"Grouping columns {missing} not in the results table (columns: {list(df.columns)}).")
    if metric is None and "metric" not in keys:
        keys = ["metric", *keys]
    return keys


def _add_t_label(out: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    if "t" not in out.columns or "t_label" in out.columns:
        return out
    if "t_label" in df.columns:
        labels = df.drop_duplicates("t").set_index("t")["t_label"]
        out.insert(out.columns.get_loc("t") + 1, "t_label", out["t"].map(labels))
    else:
        out.insert(out.columns.get_loc("t") + 1, "t_label", out["t"].map(format_time))
    return out


# ------------------------------------------------------------------------------------------------ summarize
def _describe(values: np.ndarray, chips: np.ndarray, ci: float, n_boot: int, seed: int) -> dict[str, float]:
    p5, p25, median, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
    low, high = bootstrap_ci(values, ci=ci, n_boot=n_boot, seed=seed)
    worst = np.flatnonzero(values == values.min())
    return {
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
        "min": float(values.min()),
        "p5": p5, "p25": p25, "median": median, "p75": p75, "p95": p95,
        "max": float(values.max()),
        "ci_low": low,
        "ci_high": high,
        "worst_chip": int(chips[worst].min()),  # ties: the lowest chip id
    }


def summarize(
    df: pd.DataFrame,
    metric: str | None = None,
    by: str | Sequence[str] = ("method", "t"),
    threshold: float | None = None,
    relative_threshold: float | None = None,
    ci: float = 0.95,
    n_boot: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-group distribution of the chip scores (one row per group of ``by``; per metric if ``metric`` is None).

    Columns: the group keys (+ ``t_label``), ``n, mean, std`` (ddof=1), ``min, p5, p25, median, p75, p95, max``,
    ``ci_low, ci_high`` (percentile-bootstrap CI of the mean at level ``ci``), ``worst_chip`` (chip id of the
    minimum, lowest id on ties), ``digital`` (the method's noise-free value, NaN if absent), ``threshold``
    (the absolute threshold applied) and ``yield`` (fraction of chips with ``value >= threshold``; NaN without a
    threshold). Give at most one of ``threshold`` (absolute) and ``relative_threshold`` (fraction of digital).
    """
    if threshold is not None and relative_threshold is not None:
        raise ValueError("Give either `threshold` (absolute) or `relative_threshold` (× digital), not both.")
    keys = _group_keys(df, by, metric)
    # Chip order fixes the bootstrap resamples, so results do not depend on the row order of the table.
    rows = analog_rows(df, metric).sort_values("chip", kind="stable")
    if rows.empty:
        raise ValueError("No analog (chip >= 0) rows to summarize.")
    records = []
    for group, g in rows.groupby(keys, sort=True, dropna=False):
        stats = _describe(g["value"].to_numpy(float), g["chip"].to_numpy(), ci, n_boot, seed)
        records.append({**dict(zip(keys, group, strict=True)), **stats})
    out = pd.DataFrame.from_records(records)

    ref = digital_reference(df if metric is None else df.loc[df["metric"] == metric])
    ref_keys = [k for k in _REF_KEYS if k in keys]
    if ref_keys and not ref.empty:
        ref = ref.groupby(ref_keys, sort=False, dropna=False)["digital"].mean().reset_index()
        out = out.merge(ref, on=ref_keys, how="left")
    else:
        out["digital"] = np.nan
    out = _add_yield(out, rows, keys, threshold, relative_threshold)
    return _add_t_label(out, rows)


def _add_yield(
    out: pd.DataFrame, rows: pd.DataFrame, keys: list[str], threshold: float | None, relative: float | None
) -> pd.DataFrame:
    if threshold is not None:
        out["threshold"] = float(threshold)
    elif relative is not None:
        if out["digital"].isna().any():
            raise ValueError("relative_threshold needs a digital reference row (chip == -1) for every method.")
        out["threshold"] = relative * out["digital"]
    else:
        out["threshold"] = np.nan
        out["yield"] = np.nan
        return out
    thresholds = out.set_index(keys)["threshold"]
    merged = rows.join(thresholds, on=keys)
    passed = (merged["value"] >= merged["threshold"]).groupby([merged[k] for k in keys], dropna=False).mean()
    out["yield"] = passed.reindex(pd.MultiIndex.from_frame(out[keys])).to_numpy()
    return out


# --------------------------------------------------------------------------------------------------- paired
def _paired_values(rows: pd.DataFrame, a: str, b: str, keys: list[str]) -> pd.DataFrame:
    """Wide table ``keys + chip -> value_a, value_b`` of chips scored under both methods."""
    sides = []
    for name in (a, b):
        side = rows.loc[rows["method"] == name, [*keys, "chip", "value"]]
        if side.empty:
            raise ValueError(f"No analog rows for method {name!r}; available: {sorted(rows['method'].unique())}.")
        dup = side.duplicated([*keys, "chip"])
        if dup.any():
            raise ValueError(
                f"Method {name!r} has several rows per chip for grouping {keys}: "
                f"{side.loc[dup, [*keys, 'chip']].head(3).to_dict('records')}. Filter the table or add the "
                "distinguishing column (e.g. 'deployment', 'device', 'task') to `by`."
            )
        sides.append(side.set_index([*keys, "chip"])["value"])
    return pd.concat(sides, axis=1, keys=["value_a", "value_b"], join="outer").sort_index()


def _compare(diff: np.ndarray, n_missing: int, ci: float, n_boot: int, seed: int) -> dict[str, float]:
    n = diff.size
    low, high = bootstrap_ci(diff, ci=ci, n_boot=n_boot, seed=seed)
    if n == 0:
        p = float("nan")
    elif np.all(diff == 0):
        p = 1.0  # all differences zero: no evidence of a difference (scipy would return NaN)
    else:
        p = float(sps.wilcoxon(diff).pvalue)
    return {
        "n_pairs": n,
        "n_unpaired": n_missing,
        "mean_diff": float(diff.mean()) if n else float("nan"),
        "ci_low": low,
        "ci_high": high,
        "wilcoxon_p": p,
        "frac_a_gt_b": float(np.mean(diff > 0)) if n else float("nan"),
        "frac_ties": float(np.mean(diff == 0)) if n else float("nan"),
    }


def paired(
    df: pd.DataFrame,
    a: str,
    b: str,
    metric: str | None = None,
    by: str | Sequence[str] = "t",
    ci: float = 0.95,
    n_boot: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired comparison of methods ``a`` and ``b`` on the same chips, one row per group of ``by``.

    Chips present for only one method are dropped (counted in ``n_unpaired``). Columns: the group keys
    (+ ``t_label``), ``a, b, n_pairs, n_unpaired, mean_a, mean_b, mean_diff`` (mean of a - b), ``ci_low, ci_high``
    (percentile-bootstrap CI of the mean difference), ``wilcoxon_p`` (two-sided signed-rank test of a - b; 1.0 when
    every difference is zero), ``frac_a_gt_b`` and ``frac_ties``.
    """
    keys = _group_keys(df, by, metric)
    rows = analog_rows(df, metric)
    wide = _paired_values(rows, a, b, keys)
    records = []
    for group, g in wide.groupby(level=keys, sort=True, dropna=False):
        both = g.dropna()
        diff = (both["value_a"] - both["value_b"]).to_numpy(float)
        group = group if isinstance(group, tuple) else (group,)
        records.append({
            **dict(zip(keys, group, strict=True)),
            "a": a,
            "b": b,
            "mean_a": float(both["value_a"].mean()) if len(both) else float("nan"),
            "mean_b": float(both["value_b"].mean()) if len(both) else float("nan"),
            **_compare(diff, len(g) - len(both), ci, n_boot, seed),
        })
    out = pd.DataFrame.from_records(records)
    order = [*keys, "a", "b", "n_pairs", "n_unpaired", "mean_a", "mean_b", "mean_diff"]
    out = out[order + [c for c in out.columns if c not in order]]
    return _add_t_label(out, rows)


def paired_all(
    df: pd.DataFrame,
    metric: str | None = None,
    by: str | Sequence[str] = "t",
    methods: Sequence[str] | None = None,
    ci: float = 0.95,
    n_boot: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`paired` for every unordered pair of ``methods`` (default: all, in order of appearance)."""
    if methods is None:
        methods = list(pd.unique(analog_rows(df)["method"]))
    frames = [
        paired(df, a, b, metric=metric, by=by, ci=ci, n_boot=n_boot, seed=seed)
        for a, b in itertools.combinations(methods, 2)
    ]
    if not frames:
        return pd.DataFrame(columns=["a", "b", "n_pairs", "mean_diff", "ci_low", "ci_high", "wilcoxon_p"])
    return pd.concat(frames, ignore_index=True)
