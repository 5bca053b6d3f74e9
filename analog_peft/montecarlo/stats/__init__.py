"""Statistics over chip Monte Carlo results (docs/methods.md §7).

Input is the engine's tidy table: one row per measurement with columns
``run, method, task, device, deployment, chip, t, t_label, metric, value``. Rows with ``chip == -1`` or
``device == "digital"`` are the noise-free digital reference of each method; every other row is one simulated
chip at one inference time. A method name ``NAME@K`` is replicate K (e.g. training seed K) of method NAME
(:func:`replicate_of`). The per-example scores (:mod:`..examples`) feed the hierarchical statistics of
:mod:`.hierarchical` (CIs over training seeds × chips × examples, variance decomposition, chips needed),
re-exported here; its docstring has their definitions.

Definitions used throughout (also printed in the report):

- **CI of the mean** [choice]: percentile bootstrap (``scipy.stats.bootstrap(method="percentile")``) with
  ``n_boot`` resamples and ``numpy.random.default_rng(seed)``; every group uses the same ``seed``, so the
  numbers are reproducible and equal a direct scipy call on the chip values sorted by chip id (so the
  result does not depend on the row order of the table). Percentile rather than BCa because BCa is undefined
  for the (frequent) groups where every chip scores the same. Groups with ``n < 2`` get ``NaN``; groups with
  zero variance get ``(mean, mean)``.
- **Percentiles**: ``numpy.percentile`` with numpy's default (linear) method.
- **Yield** [choice]: fraction of chips with ``value >= threshold``. An absolute ``threshold`` is used as is; a
  ``relative_threshold`` r against a reference score ``ref`` means ``value >= ref - (1 - r) * |ref|``
  (:func:`relative_threshold_value`): for ``ref > 0`` this is ``r * ref`` (the chip keeps at least r of the
  reference), and for a metric that can be negative (MCC) the allowed drop is still ``(1 - r) * |ref|``,
  so a worse reference never gets a *higher* bar. :func:`summarize` uses the method's own digital score as
  ``ref``; :func:`yield_table` gives, side by side, the absolute yield, the yield against the own digital
  score and the yield against a common reference (the best digital score of all methods, or a named
  method's), so a method is not rewarded for a worse clean model.
- **Paired comparison**: methods are matched on the chip id (same seed ⇒ same chip). Per group: mean of
  ``a - b``, its percentile-bootstrap CI, the two-sided Wilcoxon signed-rank p-value of ``a - b``
  (``scipy.stats.wilcoxon`` defaults: zero differences are dropped), and the fraction of chips with ``a > b``.
  If every difference is zero the p-value is reported as 1.0 (no evidence of a difference) instead of NaN.
  For a count metric (accuracy = correct / n) with ``n_examples`` given, the test runs on the integer
  numbers of correct examples ``round(value * n)`` (column ``test_on = "counts"``), so exact ties stay ties
  (float differences k/n do not); values that are not multiples of 1/n are refused.
- **Multiplicity**: :func:`holm` adjusts a family of p-values (Holm's step-down, family-wise error rate);
  :func:`add_holm` adds ``p_holm`` over every test of a table (the family: all its rows with a p-value) and
  :func:`family_text` states it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from device_models import units

__all__ = [
    "TIME_UNITS",
    "analog_rows",
    "bootstrap_ci",
    "digital_reference",
    "format_time",
    "paired",
    "add_holm",
    "add_sample_size",
    "chips_needed",
    "collapse_replicates",
    "family_text",
    "hierarchical_paired",
    "hierarchical_paired_all",
    "hierarchical_summary",
    "holm",
    "paired_all",
    "parse_time",
    "relative_threshold_value",
    "yield_table",
    "replicate_of",
    "summarize",
]

# [choice] a month is 30 days and a year 365 days; ``format_time`` tolerates 2 % so 1/12 year is also "1mo".
TIME_UNITS: dict[str, float] = {
    "y": units.YEAR,
    "mo": units.MONTH,
    "w": units.WEEK,
    "d": units.DAY,
    "h": units.HOUR,
    "min": units.MINUTE,
    "s": units.SECOND,
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


def replicate_of(name: str) -> tuple[str, int | None]:
    """``("grasp", 1)`` for the deployment name ``"grasp@1"`` (training seed / replicate 1 of method grasp);
    ``(name, None)`` for a name without ``@``."""
    base, sep, index = name.rpartition("@")
    if not sep:
        return name, None
    if not base or not index.isdigit():
        raise ValueError(f"method name {name!r}: '@' marks a replicate and must be followed by its index, "
                         "e.g. grasp@0 (or give several adapters as --method grasp=DIR0,DIR1)")
    return base, int(index)


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
    threshold). Give at most one of ``threshold`` (absolute) and ``relative_threshold`` (r, against the own
    digital score: ``value >= digital - (1 - r) * |digital|``).
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
        out["threshold"] = relative_threshold_value(out["digital"].to_numpy(float), relative)
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


def _compare(diff: np.ndarray, n_missing: int, ci: float, n_boot: int, seed: int,
             tested: np.ndarray | None = None) -> dict[str, float]:
    """Mean, CI and fractions of ``diff``; the Wilcoxon test of ``tested`` (default ``diff``)."""
    n = diff.size
    low, high = bootstrap_ci(diff, ci=ci, n_boot=n_boot, seed=seed)
    tested = diff if tested is None else tested
    if n == 0:
        p = float("nan")
    elif np.all(tested == 0):
        p = 1.0  # all differences zero: no evidence of a difference (scipy would return NaN)
    else:
        p = float(sps.wilcoxon(tested).pvalue)
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


#: metrics that are a count of correct examples divided by the number of examples
COUNT_METRICS = ("accuracy",)


def as_counts(values: np.ndarray, n: float) -> np.ndarray:
    """``round(values * n)`` as integers; ``ValueError`` when a value is not a multiple of ``1 / n``."""
    scaled = np.asarray(values, dtype=float) * n
    counts = np.rint(scaled)
    if np.any(np.abs(scaled - counts) > 1e-6 * max(1.0, n)):
        raise ValueError(f"values are not counts out of n = {n:g} (e.g. {values[0]!r}); pass the right "
                         "n_examples (the eval-set size) or None to test the values themselves")
    return counts.astype(np.int64)


def paired(
    df: pd.DataFrame,
    a: str,
    b: str,
    metric: str | None = None,
    by: str | Sequence[str] = "t",
    ci: float = 0.95,
    n_boot: int = 9999,
    seed: int = 0,
    n_examples: int | None = None,
) -> pd.DataFrame:
    """Paired comparison of methods ``a`` and ``b`` on the same chips, one row per group of ``by``.

    Chips present for only one method are dropped (counted in ``n_unpaired``). Columns: the group keys
    (+ ``t_label``), ``a, b, n_pairs, n_unpaired, mean_a, mean_b, mean_diff`` (mean of a - b), ``ci_low, ci_high``
    (percentile-bootstrap CI of the mean difference), ``wilcoxon_p`` (two-sided signed-rank test of a - b; 1.0 when
    every difference is zero), ``frac_a_gt_b``, ``frac_ties`` and ``test_on`` ("counts": the test ran on the
    integer numbers of correct examples, for :data:`COUNT_METRICS` when ``n_examples`` is given — a table from
    :func:`collapse_replicates` scales it by its ``replicates`` column; "values" otherwise).
    """
    keys = _group_keys(df, by, metric)
    rows = analog_rows(df, metric)
    wide = _paired_values(rows, a, b, keys)
    scale = _count_scale(rows, a, b, n_examples)
    records = []
    for group, g in wide.groupby(level=keys, sort=True, dropna=False):
        both = g.dropna()
        diff = (both["value_a"] - both["value_b"]).to_numpy(float)
        group = group if isinstance(group, tuple) else (group,)
        named = dict(zip(keys, group, strict=True))
        counted = scale is not None and named.get("metric", metric) in COUNT_METRICS
        tested = (as_counts(both["value_a"].to_numpy(), scale) - as_counts(both["value_b"].to_numpy(), scale)
                  if counted else None)
        records.append({
            **dict(zip(keys, group, strict=True)),
            "a": a,
            "b": b,
            "mean_a": float(both["value_a"].mean()) if len(both) else float("nan"),
            "mean_b": float(both["value_b"].mean()) if len(both) else float("nan"),
            **_compare(diff, len(g) - len(both), ci, n_boot, seed, tested),
            "test_on": "counts" if counted else "values",
        })
    out = pd.DataFrame.from_records(records)
    order = [*keys, "a", "b", "n_pairs", "n_unpaired", "mean_a", "mean_b", "mean_diff"]
    out = out[order + [c for c in out.columns if c not in order]]
    return _add_t_label(out, rows)


def paired_quantile(
    df: pd.DataFrame,
    a: str,
    b: str,
    q: float = 5.0,
    metric: str | None = None,
    by: str | Sequence[str] = "t",
    ci: float = 0.95,
    n_boot: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``q``-th percentile chip of ``a`` minus that of ``b`` (e.g. the 5th-percentile chip), on the chips
    both were scored on, with a paired percentile-bootstrap CI (chips resampled jointly for both methods).

    Columns: the group keys (+ ``t_label``), ``a, b, q, n_pairs, q_a, q_b, q_diff, ci_low, ci_high``.
    """
    keys = _group_keys(df, by, metric)
    rows = analog_rows(df, metric)
    wide = _paired_values(rows, a, b, keys)
    rng = np.random.default_rng(seed)
    records = []
    for group, g in wide.groupby(level=keys, sort=True, dropna=False):
        both = g.dropna()
        va, vb = both["value_a"].to_numpy(float), both["value_b"].to_numpy(float)
        n = va.size
        qa, qb = (float(np.percentile(v, q)) if n else float("nan") for v in (va, vb))
        low = high = float("nan")
        if n >= 2:
            idx = rng.integers(0, n, size=(n_boot, n))
            diffs = np.percentile(va[idx], q, axis=1) - np.percentile(vb[idx], q, axis=1)
            low, high = (float(v) for v in np.percentile(diffs, [50 * (1 - ci), 50 * (1 + ci)]))
        group = group if isinstance(group, tuple) else (group,)
        records.append({**dict(zip(keys, group, strict=True)), "a": a, "b": b, "q": q, "n_pairs": n,
                        "q_a": qa, "q_b": qb, "q_diff": qa - qb, "ci_low": low, "ci_high": high})
    return _add_t_label(pd.DataFrame.from_records(records), rows)


def _count_scale(rows: pd.DataFrame, a: str, b: str, n_examples: int | None) -> float | None:
    """Examples per chip value of both methods (× replicates of a collapsed table); None: test the values."""
    if n_examples is None:
        return None
    if "replicates" not in rows.columns:
        return float(n_examples)
    reps = {m: set(rows.loc[rows["method"] == m, "replicates"]) for m in (a, b)}
    if len(reps[a] | reps[b]) != 1:
        return None  # different numbers of seeds: the mean values are not counts on a common scale
    return float(n_examples * next(iter(reps[a])))


def paired_all(
    df: pd.DataFrame,
    metric: str | None = None,
    by: str | Sequence[str] = "t",
    methods: Sequence[str] | None = None,
    ci: float = 0.95,
    n_boot: int = 9999,
    seed: int = 0,
    n_examples: int | None = None,
) -> pd.DataFrame:
    """:func:`paired` for every unordered pair of ``methods`` (default: all, in order of appearance)."""
    if methods is None:
        methods = list(pd.unique(analog_rows(df)["method"]))
    frames = [
        paired(df, a, b, metric=metric, by=by, ci=ci, n_boot=n_boot, seed=seed, n_examples=n_examples)
        for a, b in itertools.combinations(methods, 2)
    ]
    if not frames:
        return pd.DataFrame(columns=["a", "b", "n_pairs", "mean_diff", "ci_low", "ci_high", "wilcoxon_p"])
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------- multiplicity
def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN and is not counted in the family).

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))`` with m the number of
    non-NaN p-values; rejecting ``p_holm <= alpha`` controls the family-wise error rate at alpha.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = order.size
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted) if m else adjusted
    return out


def add_holm(table: pd.DataFrame, column: str = "wilcoxon_p") -> pd.DataFrame:
    """``table`` with ``p_holm``: :func:`holm` over every row's ``column`` (the family is the whole table)."""
    out = table.copy()
    out["p_holm"] = holm(out[column].to_numpy(float)) if len(out) else []
    return out


def family_text(table: pd.DataFrame, column: str = "wilcoxon_p", over: Sequence[str] | None = None) -> str:
    """One sentence stating the family of a paired table: its size, its method pairs and the groups (values of
    the ``over`` columns; default every grouping column present: metric, task, device, deployment, t)."""
    n = int(table[column].notna().sum()) if len(table) else 0
    if n == 0:
        return "No paired tests (a single method)."
    pairs = table[["a", "b"]].drop_duplicates().shape[0]
    over = [c for c in (over or ("metric", "task", "device", "deployment", "t")) if c in table.columns]
    parts = " × ".join(f"{table[c].nunique()} {c}" for c in over)
    groups = table[over].drop_duplicates().shape[0] if over else 1
    spans = parts if groups == int(np.prod([table[c].nunique() for c in over])) else f"{groups} ({', '.join(over)})"
    return (f"Family of comparisons: all {n} paired tests of this report ({pairs} method pair(s) × {spans}); "
            "Holm-adjusted p-values (p_holm) control the family-wise error rate.")


# ------------------------------------------------------------------------------------------------ yield
def relative_threshold_value(ref: np.ndarray | float, r: float) -> np.ndarray | float:
    """The bar of a relative yield: ``ref - (1 - r) * |ref|`` (``r * ref`` for a positive reference)."""
    return ref - (1.0 - r) * np.abs(ref)


def _common_reference(ref: pd.DataFrame, reference: str) -> pd.Series:
    """Per metric, the common reference: the best digital score (``"best"``) or that of a named method
    (its replicates averaged)."""
    if reference == "best":
        return ref.groupby("metric")["digital"].max()
    names = ref["method"].map(lambda m: replicate_of(m)[0])
    chosen = ref.loc[(ref["method"] == reference) | (names == reference)]
    if chosen.empty:
        raise ValueError(f"yield reference {reference!r} is not a method of the table "
                         f"({sorted(set(ref['method']))}); use 'best' or one of them")
    return chosen.groupby("metric")["digital"].mean()


def yield_table(
    df: pd.DataFrame,
    metric: str | None = None,
    threshold: float | None = None,
    relative_threshold: float | None = None,
    reference: str = "best",
) -> pd.DataFrame:
    """Yield per method, metric and time in every form that applies, side by side.

    Columns: ``metric, method, t, t_label, n``; with ``threshold``: ``yield_abs`` (``value >= threshold``);
    with ``relative_threshold`` r: ``ref_own``, ``threshold_own``, ``yield_own`` (against the method's own
    digital score) and ``ref_common``, ``threshold_common``, ``yield_common`` (against ``reference``:
    ``"best"`` = the best digital score of all methods on that metric, or a method name), each threshold
    :func:`relative_threshold_value`.
    """
    rows = analog_rows(df, metric)
    out = rows.groupby(["metric", "method", "t"], sort=True).size().rename("n").reset_index()
    if threshold is not None:
        passed = (rows["value"] >= threshold).groupby([rows["metric"], rows["method"], rows["t"]]).mean()
        out["threshold_abs"] = float(threshold)
        out["yield_abs"] = passed.to_numpy()
    if relative_threshold is not None:
        ref = digital_reference(df if metric is None else df.loc[df["metric"] == metric])
        if ref.empty:
            raise ValueError("a relative yield needs the digital rows (chip == -1) of the methods")
        own = ref.groupby(["metric", "method"])["digital"].mean()
        out["ref_own"] = own.reindex(pd.MultiIndex.from_frame(out[["metric", "method"]])).to_numpy()
        out["ref_common"] = out["metric"].map(_common_reference(ref, reference))
        for kind in ("own", "common"):
            out[f"threshold_{kind}"] = relative_threshold_value(out[f"ref_{kind}"].to_numpy(float), relative_threshold)
            bar = rows.merge(out[["metric", "method", "t", f"threshold_{kind}"]], on=["metric", "method", "t"])
            passed = (bar["value"] >= bar[f"threshold_{kind}"]).groupby([bar["metric"], bar["method"], bar["t"]])
            out[f"yield_{kind}"] = passed.mean().to_numpy()
    out.attrs["reference"] = reference
    return _add_t_label(out, rows)


# ------------------------------------------------------------------------------------------- replicates
def collapse_replicates(df: pd.DataFrame) -> pd.DataFrame:
    """The table with each method's replicates (``NAME@K``) averaged per chip, time and metric (digital rows
    too), named ``NAME``; column ``replicates`` = how many were averaged. A table without replicates is
    returned with ``replicates = 1``."""
    names = df["method"].map(lambda m: replicate_of(m)[0])
    if (names == df["method"]).all():
        return df.assign(replicates=1)
    keys = [c for c in df.columns if c not in ("method", "value")]
    grouped = df.assign(method=names).groupby(["method", *keys], sort=False, dropna=False)["value"]
    out = grouped.agg(value="mean", replicates="size").reset_index()
    return out[[*[c for c in df.columns if c in out.columns], "replicates"]]


from .hierarchical import (  # noqa: E402  (the hierarchical module uses the helpers above)
    add_sample_size,
    chips_needed,
    hierarchical_paired,
    hierarchical_paired_all,
    hierarchical_summary,
)
