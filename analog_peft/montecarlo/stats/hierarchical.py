"""Hierarchical bootstrap over training seeds × chips × examples, variance decomposition and sample size.

Definitions (also in :mod:`analog_peft.montecarlo.stats` and the report):

- **Statistic** of a method at one time on one metric: the metric computed on each (seed, chip) from its
  per-example predictions, averaged over seeds and chips. For accuracy (and MSE) this is the mean of the
  per-example values; F1, MCC, Pearson and Spearman are recomputed from the (resampled) examples.
- **Resampling** [choice] (pigeonhole bootstrap of a crossed design): per resample ``b``, with
  ``rng = numpy.random.default_rng(seed)``, draw seed indices ``rng.integers(0, S, S)``, then chip indices
  ``rng.integers(0, C, C)``, then example indices ``rng.integers(0, N, N)`` (a factor not resampled draws
  nothing); the statistic is recomputed on ``pred[seeds][:, chips][:, :, examples]``. Chips and examples are
  crossed (every chip sees every example), so each is resampled once for all seeds / chips. A paired
  difference ``A − B`` draws A's seeds, then B's seeds (training runs are not paired), then chips and
  examples shared by both (chip k and example e are the same for A and B).
- **CI**: ``numpy.percentile`` (linear) of the resampled statistics at ``(1 − ci) / 2`` and ``(1 + ci) / 2``.
- **Variance decomposition** [choice]: the bootstrap variance of the statistic when only one factor is
  resampled (seeds, chips or examples; the others fixed at the observed ones); ``share_*`` = that variance
  / the sum of the three. The all-factor variance is reported too (``sd_all``; the pigeonhole bootstrap is
  mildly conservative: it counts the chip × example interaction under both factors).
- **Chips needed** for a CI of width W (normal approximation, z = Φ⁻¹((1 + ci) / 2)): the CI width with C
  chips is ``2 z √(σ²_chip / C + V_other)``, σ²_chip = the variance of the per-chip values (ddof = 1) and
  V_other = the seed + example variance of the statistic (0 for the chip-level CI), so
  ``C = σ²_chip / ((W / 2z)² − V_other)``, rounded up; infinite when ``V_other`` alone is wider than W
  (more chips cannot help: more examples or seeds are needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..examples import PerExample

__all__ = ["FACTORS", "Cube", "add_sample_size", "chips_needed", "cube", "draw_indices", "hier_stats",
           "hierarchical_paired", "hierarchical_paired_all", "hierarchical_summary", "metric_matrix",
           "method_groups", "point_estimate"]

FACTORS = ("seed", "chip", "example")
#: metrics recomputed from a confusion matrix (vectorised) and metrics that are means of per-example values
CONFUSION_METRICS = ("accuracy", "f1", "matthews_correlation")
MEAN_METRICS = ("accuracy", "mse")


@dataclass
class Cube:
    """Per-example predictions of one method at one time: ``pred[seed, chip, example]`` and the labels."""

    pred: np.ndarray
    labels: np.ndarray
    regression: bool = False


def method_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """Deployment names by method (``grasp@0, grasp@1 → grasp``), in order of appearance."""
    from . import replicate_of

    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(replicate_of(name)[0], []).append(name)
    return groups


def cube(data: PerExample, deployments: Sequence[str], t: float) -> Cube:
    """The :class:`Cube` of ``deployments`` (the replicates of one method) at time ``t``."""
    k = data.time_index(t)
    pred = np.stack([data.pred[data.method_index(d), :, k, :] for d in deployments])
    return Cube(pred, data.labels, data.regression)


# ---------------------------------------------------------------------------------------------- resampling
def draw_indices(rng: np.random.Generator, sizes: Sequence[int], resample: Sequence[bool]) -> list[np.ndarray]:
    """One bootstrap draw: for each factor in order, ``rng.integers(0, n, n)`` or ``arange(n)`` if fixed."""
    return [rng.integers(0, n, n) if r else np.arange(n) for n, r in zip(sizes, resample, strict=True)]


def _counts(draws: list[np.ndarray], n: int) -> np.ndarray:
    """``(B, n)`` multiplicities of the indices of each draw."""
    return np.stack([np.bincount(d, minlength=n) for d in draws]).astype(np.float64)


def _per_example(pred: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """Per-example values whose mean is ``metric`` (correct for accuracy, squared error for MSE)."""
    if metric == "accuracy":
        return (pred == labels).astype(np.float64)
    return (pred.astype(np.float64) - labels.astype(np.float64)) ** 2


def metric_matrix(pred: np.ndarray, labels: np.ndarray, metric: str, we: np.ndarray) -> np.ndarray:
    """``(B, C)``: ``metric`` of every chip (rows of ``pred``, shape ``(C, N)``) on every example weighting
    (rows of ``we``, shape ``(B, N)``: multiplicities of a resample)."""
    if metric in MEAN_METRICS:
        return we @ _per_example(pred, labels, metric).T / we.sum(1, keepdims=True)
    if metric in CONFUSION_METRICS:
        return _confusion_metric(_confusion(pred, labels, we), metric)
    if metric == "pearson":
        return _weighted_pearson(pred.astype(np.float64), labels.astype(np.float64), we)
    return _generic_metric(pred, labels, metric, we)


def _confusion(pred: np.ndarray, labels: np.ndarray, we: np.ndarray) -> np.ndarray:
    """``(B, C, K, K)`` weighted confusion counts ``[b, chip, predicted, true]``."""
    k = int(max(pred.max(), labels.max())) + 1
    conf = np.zeros((we.shape[0], pred.shape[0], k, k))
    for y in range(k):
        wy = we * (labels == y)
        for p in range(k):
            conf[:, :, p, y] = wy @ (pred == p).T.astype(np.float64)
    return conf


def _confusion_metric(conf: np.ndarray, metric: str) -> np.ndarray:
    """Accuracy, binary F1 (class 1) or Matthews' R_K of confusion counts, as in :mod:`analog_peft.tasks.metrics`."""
    s = conf.sum((-1, -2))
    correct = np.trace(conf, axis1=-2, axis2=-1)
    if metric == "accuracy":
        return correct / s
    if metric == "f1":
        tp = conf[..., 1, 1]
        fp_fn = conf[..., 1, :].sum(-1) + conf[..., :, 1].sum(-1) - 2 * tp
        return np.where(tp == 0, 0.0, 2 * tp / np.maximum(2 * tp + fp_fn, 1e-300))
    pk, tk = conf.sum(-1), conf.sum(-2)
    cov_py = correct * s - (pk * tk).sum(-1)
    cov_pp = s * s - (pk * pk).sum(-1)
    cov_yy = s * s - (tk * tk).sum(-1)
    denom = np.sqrt(np.maximum(cov_pp * cov_yy, 0.0))
    return np.where((cov_pp == 0) | (cov_yy == 0), 0.0, cov_py / np.where(denom == 0, 1.0, denom))


def _weighted_pearson(pred: np.ndarray, labels: np.ndarray, we: np.ndarray) -> np.ndarray:
    """Pearson correlation of each chip's predictions with the labels under integer weights (0 if constant)."""
    n = we.sum(1, keepdims=True)
    my = we @ labels / n[:, 0]
    mp = we @ pred.T / n
    sxy = we @ (pred * labels).T / n - mp * my[:, None]
    sxx = we @ (pred**2).T / n - mp**2
    syy = (we @ labels**2 / n[:, 0] - my**2)[:, None]
    ok = (sxx > 1e-12 * np.maximum(mp**2, 1)) & (syy > 0)
    return np.where(ok, sxy / np.sqrt(np.where(ok, sxx * syy, 1.0)), 0.0)


def _generic_metric(pred: np.ndarray, labels: np.ndarray, metric: str, we: np.ndarray) -> np.ndarray:
    """Any task metric by name, recomputed on each resample (a loop; Spearman)."""
    from analog_peft.tasks.metrics import GLUE_METRICS

    if metric not in GLUE_METRICS:
        raise ValueError(f"metric {metric!r} cannot be recomputed from per-example predictions; "
                         f"known: {sorted({*GLUE_METRICS, 'mse'})}")
    fn = GLUE_METRICS[metric]
    out = np.zeros((we.shape[0], pred.shape[0]))
    for b, w in enumerate(we.astype(np.int64)):
        idx = np.repeat(np.arange(w.size), w)
        out[b] = [fn(row[idx], labels[idx]) for row in pred]
    return out


def _cube_stats(c: Cube, metric: str, ws: np.ndarray, wc: np.ndarray, we: np.ndarray) -> np.ndarray:
    """``(B,)``: the statistic on each resample given seed / chip / example multiplicities."""
    out = np.zeros(we.shape[0])
    for s in range(c.pred.shape[0]):
        per_chip = metric_matrix(c.pred[s], c.labels, metric, we)
        out += ws[:, s] * (per_chip * wc).sum(1) / wc.sum(1)
    return out / ws.sum(1)


def point_estimate(c: Cube, metric: str) -> float:
    """The statistic on the observed seeds, chips and examples."""
    n_seed, n_chip, n_ex = c.pred.shape
    return float(_cube_stats(c, metric, np.ones((1, n_seed)), np.ones((1, n_chip)), np.ones((1, n_ex)))[0])


def hier_stats(a: Cube, metric: str, factors: Sequence[str] = FACTORS, n_boot: int = 2000, seed: int = 0,
               b: Cube | None = None) -> np.ndarray:
    """``n_boot`` resampled statistics of ``a`` (or of ``a − b``, paired on chips and examples) resampling
    ``factors`` (a subset of :data:`FACTORS`), in the draw order of the module docstring."""
    unknown = set(factors) - set(FACTORS)
    if unknown:
        raise ValueError(f"unknown factors {sorted(unknown)}; choose from {FACTORS}")
    if b is not None and a.pred.shape[1:] != b.pred.shape[1:]:
        raise ValueError(f"paired cubes need the same chips and examples, got {a.pred.shape} and {b.pred.shape}")
    rng = np.random.default_rng(seed)
    sa, sb, sc, se = [], [], [], []
    n_seed, n_chip, n_ex = a.pred.shape
    for _ in range(n_boot):
        sa.append(draw_indices(rng, [n_seed], ["seed" in factors])[0])
        if b is not None:
            sb.append(draw_indices(rng, [b.pred.shape[0]], ["seed" in factors])[0])
        c_idx, e_idx = draw_indices(rng, [n_chip, n_ex], ["chip" in factors, "example" in factors])
        sc.append(c_idx)
        se.append(e_idx)
    wc, we = _counts(sc, n_chip), _counts(se, n_ex)
    out = _cube_stats(a, metric, _counts(sa, n_seed), wc, we)
    if b is not None:
        out -= _cube_stats(b, metric, _counts(sb, b.pred.shape[0]), wc, we)
    return out


def chips_needed(sd_chip: float, width: float, other_var: float = 0.0, ci: float = 0.95) -> float:
    """Chips for a CI of ``width`` (see the module docstring); ``inf`` when ``other_var`` alone is too wide."""
    if not (sd_chip >= 0 and width > 0):
        return float("nan")
    z = float(sps.norm.ppf((1 + ci) / 2))
    room = (width / (2 * z)) ** 2 - other_var
    if room <= 0:
        return float("inf")
    return float(max(2, int(np.ceil(sd_chip**2 / room))))


def percentile_ci(values: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap statistics (``numpy.percentile``, linear)."""
    low, high = np.percentile(values, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return float(low), float(high)


def decompose(a: Cube, metric: str, n_boot: int, seed: int, ci: float, b: Cube | None = None) -> dict[str, float]:
    """CI over every factor and the single-factor bootstrap variances (see the module docstring)."""
    everything = hier_stats(a, metric, FACTORS, n_boot, seed, b)
    low, high = percentile_ci(everything, ci)
    out = {"ci_low": low, "ci_high": high, "sd_all": float(everything.std(ddof=1))}
    varies = {"seed": a.pred.shape[0] > 1 or (b is not None and b.pred.shape[0] > 1),
              "chip": a.pred.shape[1] > 1, "example": a.pred.shape[2] > 1}
    variances = {f: float(hier_stats(a, metric, (f,), n_boot, seed, b).var(ddof=1)) if varies[f] else 0.0
                 for f in FACTORS}
    total = sum(variances.values())
    for factor, v in variances.items():
        out[f"sd_{factor}"] = float(np.sqrt(v))
        out[f"share_{factor}"] = v / total if total > 0 else float("nan")
    return out


def chip_values(c: Cube, metric: str, b: Cube | None = None) -> np.ndarray:
    """Per-chip statistic (averaged over seeds; ``a − b`` for a pair) on the observed examples."""
    ones = np.ones((1, c.pred.shape[2]))

    def per_chip(x: Cube) -> np.ndarray:
        return np.mean([metric_matrix(x.pred[s], x.labels, metric, ones)[0] for s in range(x.pred.shape[0])], 0)

    return per_chip(c) - (per_chip(b) if b is not None else 0.0)


def summary_record(a: Cube, metric: str, n_boot: int, seed: int, ci: float, b: Cube | None = None) -> dict:
    """One row of the hierarchical summary / paired table: sizes, estimate, CI, variance parts, chip sd."""
    chips = chip_values(a, metric, b)
    estimate = point_estimate(a, metric) - (point_estimate(b, metric) if b is not None else 0.0)
    record = {"n_seeds": a.pred.shape[0], "n_chips": a.pred.shape[1], "n_examples": a.pred.shape[2],
              "estimate": estimate, **decompose(a, metric, n_boot, seed, ci, b),
              "sd_chip_values": float(chips.std(ddof=1)) if chips.size > 1 else float("nan")}
    if b is not None:
        record["n_seeds_b"] = b.pred.shape[0]
    return record


# ------------------------------------------------------------------------------------------- table level
def _checked_rows(df: pd.DataFrame, data: PerExample | None, metric: str | None) -> pd.DataFrame:
    """The chip rows of ``df`` (one metric or all), checked to be the chips of ``data``."""
    from . import analog_rows

    if data is None:
        raise ValueError("this run has no per-example scores (per_example.npz; runs made before they were kept): "
                         "use the chip-level statistics (stats.summarize / stats.paired)")
    rows = analog_rows(df, metric)
    if set(rows["chip"]) != set(data.chips.tolist()):
        raise ValueError(f"the per-example file holds chips {data.chips.min()}..{data.chips.max()} "
                         f"({data.chips.size}) but the table has {rows['chip'].nunique()}; re-run collect()")
    return rows


def _deployments(groups: dict[str, list[str]], name: str) -> list[str]:
    if name in groups:
        return groups[name]
    if any(name in deps for deps in groups.values()):
        return [name]
    raise ValueError(f"no method {name!r}; available: {sorted(groups)}")


def _with_labels(out: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    labels = rows.drop_duplicates("t").set_index("t")["t_label"] if "t_label" in rows else None
    if not out.empty:
        from . import format_time

        out.insert(out.columns.get_loc("t") + 1, "t_label",
                   out["t"].map(labels) if labels is not None else out["t"].map(format_time))
    return out


def hierarchical_summary(df: pd.DataFrame, data: PerExample | None, metric: str | None = None,
                         n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Per method (replicates pooled), metric and time: ``n_seeds, n_chips, n_examples, estimate, ci_low,
    ci_high`` (all factors), ``sd_all``, ``sd_seed / sd_chip / sd_example`` and ``share_*`` (variance
    decomposition) and ``sd_chip_values`` (sd of the per-chip values, for :func:`chips_needed`)."""
    rows = _checked_rows(df, data, metric)
    groups = method_groups(pd.unique(rows["method"]))
    records = []
    for m in pd.unique(rows["metric"]):
        for base, deps in groups.items():
            for t in np.sort(rows["t"].unique()):
                rec = summary_record(cube(data, deps, t), m, n_boot, seed, ci)
                records.append({"metric": m, "method": base, "t": float(t), **rec})
    return _with_labels(pd.DataFrame.from_records(records), rows)


def hierarchical_paired(df: pd.DataFrame, data: PerExample | None, a: str, b: str, metric: str | None = None,
                        n_boot: int = 2000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """:func:`hierarchical_summary` of the paired difference ``a − b`` (same chips and examples; seeds of
    each drawn separately), one row per metric and time, with columns ``a, b``."""
    rows = _checked_rows(df, data, metric)
    groups = method_groups(pd.unique(rows["method"]))
    deps_a, deps_b = _deployments(groups, a), _deployments(groups, b)
    records = []
    for m in pd.unique(rows["metric"]):
        for t in np.sort(rows["t"].unique()):
            rec = summary_record(cube(data, deps_a, t), m, n_boot, seed, ci, cube(data, deps_b, t))
            records.append({"metric": m, "t": float(t), "a": a, "b": b, **rec})
    return _with_labels(pd.DataFrame.from_records(records), rows)


def hierarchical_paired_all(df: pd.DataFrame, data: PerExample | None, metric: str | None = None,
                            methods: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0,
                            ci: float = 0.95) -> pd.DataFrame:
    """:func:`hierarchical_paired` for every unordered pair of methods (replicates pooled)."""
    from itertools import combinations

    if methods is None:
        methods = list(method_groups(pd.unique(_checked_rows(df, data, metric)["method"])))
    frames = [hierarchical_paired(df, data, a, b, metric, n_boot, seed, ci) for a, b in combinations(methods, 2)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def add_sample_size(table: pd.DataFrame, width: float, ci: float = 0.95, sd: str = "sd_chip_values") -> pd.DataFrame:
    """Columns ``chips_for_width`` (the chip-level CI) and, with per-example parts, ``chips_for_width_all``
    (every source): :func:`chips_needed` for a CI ``width`` wide, from the column ``sd``."""
    out = table.copy()
    out["target_width"] = width
    out["chips_for_width"] = [chips_needed(s, width, 0.0, ci) for s in out[sd]]
    if {"sd_seed", "sd_example"} <= set(out.columns):
        other = out["sd_seed"] ** 2 + out["sd_example"] ** 2
        out["chips_for_width_all"] = [chips_needed(s, width, v, ci) for s, v in zip(out[sd], other, strict=True)]
    return out
