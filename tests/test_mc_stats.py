"""Tests for analog_peft.montecarlo.stats: numbers must equal direct numpy / scipy computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analog_peft.montecarlo import stats as S

TIMES = {"1s": 1.0, "1h": 3600.0, "1y": 365 * 86400.0}
N_BOOT = 999


def make_results(n_chips: int = 12, methods: dict[str, float] | None = None, seed: int = 0) -> pd.DataFrame:
    """Synthetic engine table: digital rows (chip -1) plus one accuracy row per (method, chip, t)."""
    methods = methods or {"lora": 0.90, "grasp": 0.92}
    rng = np.random.default_rng(seed)
    rows = []
    common = {"run": "r0", "task": "sst2", "deployment": "periphery", "metric": "accuracy"}
    for method, base in methods.items():
        rows.append({**common, "method": method, "device": "digital", "chip": -1, "t": 0.0, "t_label": "0s",
                     "value": base})
        for label, t in TIMES.items():
            for chip in range(n_chips):
                value = base - 0.01 * np.log10(t) + rng.normal(0, 0.02)
                rows.append({**common, "method": method, "device": "pcm", "chip": chip, "t": t,
                             "t_label": label, "value": value})
    return pd.DataFrame(rows)


def _chip_values(df: pd.DataFrame, method: str, t: float) -> pd.DataFrame:
    sel = df[(df.method == method) & (df.t == t) & (df.chip >= 0)]
    return sel.sort_values("chip")


def test_summarize_matches_numpy_and_scipy():
    df = make_results()
    out = S.summarize(df, metric="accuracy", n_boot=N_BOOT, seed=3)
    assert len(out) == 2 * len(TIMES)
    for _, row in out.iterrows():
        x = _chip_values(df, row["method"], row["t"])["value"].to_numpy()
        assert row["n"] == x.size
        assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["std"] == pytest.approx(x.std(ddof=1), rel=1e-12)
        assert row["min"] == x.min() and row["max"] == x.max()
        expected = np.percentile(x, [5, 25, 50, 75, 95])
        np.testing.assert_allclose(row[["p5", "p25", "median", "p75", "p95"]].to_numpy(float), expected)
        ref = sps.bootstrap((x,), np.mean, n_resamples=N_BOOT, method="percentile",
                            rng=np.random.default_rng(3)).confidence_interval
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-12)
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
        assert row["digital"] == {"lora": 0.90, "grasp": 0.92}[row["method"]]
        assert row["t_label"] == {v: k for k, v in TIMES.items()}[row["t"]]


def test_summarize_independent_of_row_order():
    df = make_results()
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(S.summarize(shuffled, n_boot=N_BOOT), S.summarize(df, n_boot=N_BOOT))


def test_summarize_excludes_digital_rows_and_groups_metrics():
    df = make_results()
    mcc = df.assign(metric="mcc", value=df["value"] - 0.5)
    out = S.summarize(pd.concat([df, mcc]), n_boot=N_BOOT)
    assert set(out["metric"]) == {"accuracy", "mcc"}
    assert (out["n"] == 12).all()  # chip -1 never counted
    acc = out[out.metric == "accuracy"].reset_index(drop=True)
    only = S.summarize(df, metric="accuracy", n_boot=N_BOOT).reset_index(drop=True)
    np.testing.assert_allclose(acc["mean"], only["mean"])


def test_worst_chip_and_yield_hand_made():
    values = {0: 0.80, 1: 0.95, 2: 0.70, 3: 0.90, 4: 0.70}
    rows = [{"method": "m", "device": "pcm", "chip": c, "t": 1.0, "t_label": "1s", "metric": "accuracy",
             "value": v} for c, v in values.items()]
    rows.append({"method": "m", "device": "digital", "chip": -1, "t": 0.0, "t_label": "0s",
                 "metric": "accuracy", "value": 1.0})
    df = pd.DataFrame(rows)
    out = S.summarize(df, threshold=0.8, n_boot=N_BOOT).iloc[0]
    assert out["worst_chip"] == 2  # tie between chips 2 and 4 -> lowest id
    assert out["yield"] == pytest.approx(3 / 5)  # 0.80 counts (>=)
    rel = S.summarize(df, relative_threshold=0.9, n_boot=N_BOOT).iloc[0]
    assert rel["threshold"] == pytest.approx(0.9) and rel["yield"] == pytest.approx(2 / 5)
    none = S.summarize(df, n_boot=N_BOOT).iloc[0]
    assert np.isnan(none["yield"])
    with pytest.raises(ValueError):
        S.summarize(df, threshold=0.5, relative_threshold=0.9)


def test_summarize_degenerate_groups():
    rows = [{"method": "m", "chip": c, "t": 1.0, "metric": "accuracy", "value": 0.5} for c in range(4)]
    rows.append({"method": "single", "chip": 0, "t": 1.0, "metric": "accuracy", "value": 0.3})
    out = S.summarize(pd.DataFrame(rows), n_boot=N_BOOT).set_index("method")
    assert out.loc["m", "ci_low"] == out.loc["m", "ci_high"] == 0.5
    assert out.loc["m", "std"] == 0.0
    assert out.loc["single", "n"] == 1
    assert np.isnan(out.loc["single", "std"]) and np.isnan(out.loc["single", "ci_low"])
    assert out.loc["m", "t_label"] == "1s"  # derived when the table has no t_label
    assert np.isnan(out.loc["m", "digital"])


def test_paired_matches_scipy():
    df = make_results()
    out = S.paired(df, "grasp", "lora", metric="accuracy", n_boot=N_BOOT, seed=1)
    assert list(out["t"]) == sorted(TIMES.values())
    for _, row in out.iterrows():
        a = _chip_values(df, "grasp", row["t"])["value"].to_numpy()
        b = _chip_values(df, "lora", row["t"])["value"].to_numpy()
        d = a - b
        assert row["n_pairs"] == d.size
        assert row["mean_diff"] == pytest.approx(d.mean(), rel=1e-12)
        assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue, rel=1e-12)
        assert row["frac_a_gt_b"] == pytest.approx(np.mean(a > b))
        ref = sps.bootstrap((d,), np.mean, n_resamples=N_BOOT, method="percentile",
                            rng=np.random.default_rng(1)).confidence_interval
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ref.low, ref.high), rel=1e-12)


def test_paired_matches_on_chip_not_row_order():
    df = make_results()
    ref = S.paired(df, "grasp", "lora", n_boot=N_BOOT)
    shuffled = df.sample(frac=1.0, random_state=7).reset_index(drop=True)
    pd.testing.assert_frame_equal(S.paired(shuffled, "grasp", "lora", n_boot=N_BOOT), ref)

    # Chip 5 missing for lora at every t: dropped from the pairs, not paired with some other chip.
    dropped = df[~((df.method == "lora") & (df.chip == 5))]
    out = S.paired(dropped, "grasp", "lora", n_boot=N_BOOT)
    assert (out["n_pairs"] == 11).all() and (out["n_unpaired"] == 1).all()
    for _, row in out.iterrows():
        a = _chip_values(df, "grasp", row["t"]).set_index("chip")["value"].drop(5)
        b = _chip_values(df, "lora", row["t"]).set_index("chip")["value"].drop(5)
        assert row["mean_diff"] == pytest.approx((a - b).mean(), rel=1e-12)
        assert row["wilcoxon_p"] == pytest.approx(sps.wilcoxon(a, b).pvalue, rel=1e-12)


def test_paired_all_zero_differences_and_duplicates():
    df = make_results(methods={"a": 0.9})
    twin = df.assign(method="b")
    out = S.paired(pd.concat([df, twin]), "a", "b", n_boot=N_BOOT)
    assert (out["wilcoxon_p"] == 1.0).all() and (out["mean_diff"] == 0).all()
    assert (out["frac_ties"] == 1.0).all() and (out["frac_a_gt_b"] == 0.0).all()
    with pytest.raises(ValueError, match="several rows per chip"):
        S.paired(pd.concat([df, twin, twin.assign(deployment="fused")]), "a", "b")
    with pytest.raises(ValueError, match="No analog rows"):
        S.paired(df, "a", "missing")


def test_paired_quantile_matches_numpy_and_a_known_shift():
    df = make_results(n_chips=40, methods={"a": 0.90, "b": 0.85}, seed=4)
    out = S.paired_quantile(df, "a", "b", q=5, metric="accuracy", n_boot=N_BOOT, seed=1).set_index("t")
    for t in TIMES.values():
        va = _chip_values(df, "a", t)["value"].to_numpy()
        vb = _chip_values(df, "b", t)["value"].to_numpy()
        row = out.loc[t]
        assert row["q_a"] == pytest.approx(np.percentile(va, 5)) and row["n_pairs"] == 40
        assert row["q_diff"] == pytest.approx(np.percentile(va, 5) - np.percentile(vb, 5))
        assert row["ci_low"] <= row["q_diff"] <= row["ci_high"] and row["ci_high"] - row["ci_low"] > 0
    # b is a shifted down by 0.05 on every chip: every resample's difference is exactly the shift
    shifted = df.copy()
    is_b = shifted.method == "b"
    shifted.loc[is_b, "value"] = df.loc[df.method == "a", "value"].to_numpy() - 0.05
    exact = S.paired_quantile(shifted, "a", "b", q=5, metric="accuracy", n_boot=N_BOOT)
    assert np.allclose(exact[["q_diff", "ci_low", "ci_high"]].to_numpy(), 0.05)


def test_paired_all_every_pair():
    df = make_results(methods={"x": 0.9, "y": 0.91, "z": 0.8})
    out = S.paired_all(df, n_boot=N_BOOT)
    assert set(zip(out["a"], out["b"], strict=True)) == {("x", "y"), ("x", "z"), ("y", "z")}
    assert len(out) == 3 * len(TIMES)


@pytest.mark.parametrize(
    ("label", "seconds"),
    [("1s", 1), ("1h", 3600), ("1d", 86400), ("1w", 604800), ("1mo", 2592000), ("1y", 31536000), ("90min", 5400)],
)
def test_time_labels_round_trip(label, seconds):
    assert S.parse_time(label) == seconds
    assert S.format_time(seconds) == label


def test_time_labels_edge_cases():
    assert S.format_time(365.25 * 86400) == "1y" and S.format_time(365.25 * 86400 / 12) == "1mo"
    assert S.parse_time("2.5h") == 9000 and S.parse_time(42) == 42.0 and S.parse_time("10") == 10
    with pytest.raises(ValueError):
        S.parse_time("3 fortnights")
