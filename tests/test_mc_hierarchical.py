"""Hierarchical bootstrap, Holm, yield references, Wilcoxon on counts and sample size, each recomputed by an
independent implementation (brute-force loops on the same rng stream, textbook Holm, direct counting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analog_peft.montecarlo import stats as S
from analog_peft.montecarlo.examples import PerExample, flipping_examples
from analog_peft.montecarlo.files import read_results_csv
from analog_peft.montecarlo.stats import hierarchical as H
from analog_peft.tasks.metrics import GLUE_METRICS

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "montecarlo_sst2_pcm"


def make_cube(n_seeds=2, n_chips=5, n_ex=30, seed=0, flip=0.2, classes=2) -> H.Cube:
    """Predictions = labels with a per-(seed, chip) share of random flips (correlated within a chip)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n_ex)
    hard = rng.random(n_ex) < 0.3  # examples that flip often
    p_flip = flip * (0.3 + 1.4 * rng.random((n_seeds, n_chips, 1))) * np.where(hard, 2.0, 0.3)
    flips = rng.random((n_seeds, n_chips, n_ex)) < p_flip
    pred = np.where(flips, (labels + rng.integers(1, classes, (n_seeds, n_chips, n_ex))) % classes, labels)
    return H.Cube(pred.astype(np.int16), labels)


def brute_force(a: H.Cube, metric: str, n_boot: int, seed: int, b: H.Cube | None = None) -> np.ndarray:
    """The documented algorithm as a plain loop: draw seeds (A's, then B's), chips, examples; recompute the
    task metric per resampled (seed, chip) with analog_peft.tasks.metrics; average."""
    fn = GLUE_METRICS.get(metric) or (lambda p, y: float(np.mean((p - y) ** 2)))
    rng = np.random.default_rng(seed)
    n_seed, n_chip, n_ex = a.pred.shape

    def stat(x: H.Cube, s: np.ndarray, c: np.ndarray, e: np.ndarray) -> float:
        return float(np.mean([fn(x.pred[i, j, e], x.labels[e]) for i in s for j in c]))

    out = []
    for _ in range(n_boot):
        s = rng.integers(0, n_seed, n_seed)
        sb = rng.integers(0, b.pred.shape[0], b.pred.shape[0]) if b is not None else None
        c = rng.integers(0, n_chip, n_chip)
        e = rng.integers(0, n_ex, n_ex)
        out.append(stat(a, s, c, e) - (stat(b, sb, c, e) if b is not None else 0.0))
    return np.array(out)


@pytest.mark.parametrize("metric", ["accuracy", "f1", "matthews_correlation"])
def test_hierarchical_bootstrap_equals_brute_force_loop(metric):
    a = make_cube()
    fast = H.hier_stats(a, metric, n_boot=60, seed=4)
    np.testing.assert_allclose(fast, brute_force(a, metric, 60, 4), rtol=1e-10, atol=1e-12)
    b = make_cube(n_seeds=3, seed=1)
    b.labels = a.labels  # same examples
    paired = H.hier_stats(a, metric, n_boot=40, seed=2, b=b)
    np.testing.assert_allclose(paired, brute_force(a, metric, 40, 2, b), rtol=1e-10, atol=1e-12)


def test_multiclass_mcc_equals_the_task_metric():
    a = make_cube(n_seeds=1, classes=3, seed=5)
    np.testing.assert_allclose(H.hier_stats(a, "matthews_correlation", n_boot=30, seed=1),
                               brute_force(a, "matthews_correlation", 30, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ["pearson", "spearman", "mse"])
def test_regression_metrics_are_recomputed_on_resampled_examples(metric):
    rng = np.random.default_rng(3)
    labels = rng.uniform(0, 5, 25)
    pred = labels + rng.normal(0, 1.0, (1, 4, 25)) + rng.normal(0, 0.5, (1, 4, 1))
    a = H.Cube(pred.astype(np.float32), labels, regression=True)
    np.testing.assert_allclose(H.hier_stats(a, metric, n_boot=25, seed=0), brute_force(a, metric, 25, 0),
                               rtol=1e-8, atol=1e-10)


def test_single_factor_resampling_and_variance_property():
    a = make_cube(n_seeds=1, n_chips=40, n_ex=200, seed=7, flip=0.15)
    fixed = H.hier_stats(a, "accuracy", factors=(), n_boot=3)
    assert np.all(fixed == H.point_estimate(a, "accuracy"))  # nothing resampled: the estimate itself
    chips_only = H.hier_stats(a, "accuracy", factors=("chip",), n_boot=2000, seed=1)
    per_chip = (a.pred[0] == a.labels).mean(1)  # chip-level bootstrap variance of the mean = var/C (ddof 0)
    assert chips_only.var() == pytest.approx(per_chip.var() / per_chip.size, rel=0.12)
    rec = H.summary_record(a, "accuracy", n_boot=2000, seed=0, ci=0.95)
    # crossed design: var(all) ≈ var(chips) + var(examples) (plus a small interaction term)
    assert rec["sd_all"] ** 2 == pytest.approx(rec["sd_chip"] ** 2 + rec["sd_example"] ** 2, rel=0.2)
    assert rec["share_seed"] == 0 and rec["share_chip"] + rec["share_example"] == pytest.approx(1)
    assert rec["ci_low"] < rec["estimate"] < rec["ci_high"]


def holm_reference(p):
    """Textbook Holm: sort, multiply the i-th smallest by (m - i), enforce monotonicity, cap at 1."""
    idx = [i for i, x in enumerate(p) if not np.isnan(x)]
    order = sorted(idx, key=lambda i: p[i])
    out, running = [float("nan")] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[i]))
        out[i] = running
    return out


def test_holm_against_a_textbook_implementation():
    rng = np.random.default_rng(0)
    p = list(rng.uniform(0, 0.2, 12)) + [0.01, 0.01, float("nan"), 0.5]
    np.testing.assert_allclose(S.holm(p), holm_reference(p), equal_nan=True)
    assert S.holm([0.04, 0.01, 0.03]).tolist() == pytest.approx([0.06, 0.03, 0.06])
    table = S.add_holm(pd.DataFrame({"a": ["x"] * 4, "b": ["y"] * 4, "t": [1, 2, 3, 4],
                                     "wilcoxon_p": [0.01, 0.02, 0.03, 0.5]}))
    assert table["p_holm"].tolist() == pytest.approx([0.04, 0.06, 0.06, 0.5])
    assert "all 4 paired tests" in S.family_text(table)


def _yield_df():
    rows = []
    digital = {"good": (0.9, 0.5), "bad": (0.8, -0.2)}  # (accuracy, mcc) of each method's clean model
    values = {"good": [0.89, 0.86, 0.80], "bad": [0.79, 0.78, 0.70]}
    for m, (acc, mcc) in digital.items():
        for metric, ref in (("accuracy", acc), ("mcc", mcc)):
            rows.append({"method": m, "device": "digital", "chip": -1, "t": 0.0, "metric": metric, "value": ref})
            for chip, v in enumerate(values[m]):
                rows.append({"method": m, "device": "pcm", "chip": chip, "t": 1.0, "metric": metric,
                             "value": v if metric == "accuracy" else ref - (0.9 - v)})
    return pd.DataFrame(rows)


def test_yield_absolute_own_and_common_reference():
    df = _yield_df()
    out = S.yield_table(df, threshold=0.81, relative_threshold=0.95).set_index(["metric", "method"])
    # direct counting
    assert out.loc[("accuracy", "good"), "yield_abs"] == pytest.approx(2 / 3)  # 0.89, 0.86 ≥ 0.81 (0.80 is not)
    assert out.loc[("accuracy", "bad"), "yield_abs"] == 0.0
    assert out.loc[("accuracy", "bad"), "yield_own"] == pytest.approx(2 / 3)  # ≥ 0.76: 0.79, 0.78
    assert out.loc[("accuracy", "bad"), "threshold_common"] == pytest.approx(0.855)  # best digital 0.9
    assert out.loc[("accuracy", "bad"), "yield_common"] == 0.0
    assert out.loc[("accuracy", "good"), "yield_common"] == pytest.approx(2 / 3)
    # negative reference: the bar is ref - 0.05 |ref| = -0.21, below the reference (r * ref = -0.19 is above it)
    assert out.loc[("mcc", "bad"), "threshold_own"] == pytest.approx(-0.21)
    bad_mcc = df[(df.method == "bad") & (df.metric == "mcc") & (df.chip >= 0)]["value"]
    assert out.loc[("mcc", "bad"), "yield_own"] == pytest.approx(np.mean(bad_mcc >= -0.21))
    named = S.yield_table(df, relative_threshold=0.95, reference="bad").set_index(["metric", "method"])
    assert named.loc[("accuracy", "good"), "threshold_common"] == pytest.approx(0.76)
    with pytest.raises(ValueError, match="not a method"):
        S.yield_table(df, relative_threshold=0.9, reference="missing")


def test_wilcoxon_runs_on_integer_counts():
    n = 872
    rng = np.random.default_rng(1)
    ka = rng.integers(660, 700, 25)
    kb = ka - rng.choice([0, 1, 1, 2, 2, 3, -1], 25)
    rows = [{"method": m, "chip": c, "t": 1.0, "metric": "accuracy", "value": k / n}
            for m, ks in (("a", ka), ("b", kb)) for c, k in enumerate(ks)]
    df = pd.DataFrame(rows)
    out = S.paired(df, "a", "b", n_examples=n, n_boot=99).iloc[0]
    assert out["test_on"] == "counts"
    assert out["wilcoxon_p"] == pytest.approx(sps.wilcoxon(ka - kb).pvalue, rel=1e-12)
    float_diff = ka / n - kb / n
    assert len(set(float_diff[ka - kb == 2])) > 1  # floats break the exact ties the counts keep
    assert S.paired(df, "a", "b", n_boot=99).iloc[0]["test_on"] == "values"
    with pytest.raises(ValueError, match="not counts out of n = 871"):
        S.paired(df, "a", "b", n_examples=871, n_boot=99)


def test_published_study_counts_test_against_scipy():
    df = read_results_csv(PUBLISHED / "results.csv")
    out = S.paired(df, "stochgrasp", "grasp", metric="accuracy", n_examples=872, n_boot=99)
    for row in out.itertuples():
        sel = df[(df.metric == "accuracy") & (df.t == row.t) & (df.chip >= 0)]
        a = np.rint(sel[sel.method == "stochgrasp"].sort_values("chip")["value"].to_numpy() * 872)
        b = np.rint(sel[sel.method == "grasp"].sort_values("chip")["value"].to_numpy() * 872)
        assert row.wilcoxon_p == pytest.approx(sps.wilcoxon(a - b).pvalue, rel=1e-12)


def test_chips_needed_meets_the_width_and_not_one_chip_less():
    z = sps.norm.ppf(0.975)
    for sd, width, other in [(0.02, 0.01, 0.0), (0.04, 0.02, 1e-6), (0.01, 0.004, 0.0)]:
        n = H.chips_needed(sd, width, other)
        assert 2 * z * np.sqrt(sd**2 / n + other) <= width < 2 * z * np.sqrt(sd**2 / (n - 1) + other)
    assert H.chips_needed(0.02, 0.01, other_var=(0.01 / (2 * z)) ** 2) == float("inf")


def test_collapse_replicates_and_hierarchical_summary_with_seeds():
    a, b = make_cube(n_seeds=2, seed=0), make_cube(n_seeds=1, seed=1)
    b.labels = a.labels
    methods = ["m@0", "m@1", "base"]
    pred = np.concatenate([a.pred, b.pred])[:, :, None, :]  # (methods, chips, 1 time, examples)
    data = PerExample(methods, np.arange(5), np.array([1.0]), a.labels, pred, np.zeros(pred.shape, np.float16))
    rows = [{"method": m, "device": "pcm", "chip": c, "t": 1.0, "t_label": "1s", "metric": "accuracy",
             "value": float((pred[i, c, 0] == a.labels).mean())} for i, m in enumerate(methods) for c in range(5)]
    df = pd.DataFrame(rows)
    hier = S.hierarchical_summary(df, data, n_boot=50).set_index("method")
    assert hier.loc["m", "n_seeds"] == 2 and hier.loc["base", "n_seeds"] == 1
    collapsed = S.collapse_replicates(df)
    m_mean = collapsed[collapsed.method == "m"]["value"].mean()
    assert hier.loc["m", "estimate"] == pytest.approx(m_mean) and set(collapsed["replicates"]) == {1, 2}
    assert hier.loc["m", "share_seed"] > 0
    pair = S.hierarchical_paired(df, data, "m", "base", n_boot=30)
    assert pair["estimate"].iloc[0] == pytest.approx(m_mean - hier.loc["base", "estimate"])
    flips = flipping_examples(data, "base", 1.0)
    correct = (b.pred[0] == a.labels).sum(0)
    assert set(flips["example"]) == set(np.flatnonzero((correct > 0) & (correct < 5)))
    with pytest.raises(ValueError, match="no per-example scores"):
        S.hierarchical_summary(df, None)
