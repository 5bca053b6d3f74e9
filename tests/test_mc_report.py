"""Tests for analog_peft.montecarlo.report (files, self-containment) and the headless-Chromium check."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_browser import check_report_renders, screenshot_stats  # scripts/, on sys.path by conftest
from scipy import stats as sps

from analog_peft.montecarlo import report as R

TIMES = {"1s": 1.0, "1h": 3600.0, "1d": 86400.0, "1y": 365 * 86400.0}
N_BOOT = 200


def make_run(path: Path, methods=("grasp", "lora", "bitfit"), deployments=("periphery",), n_chips=16,
             manifest_extra: dict | None = None) -> Path:
    """Write a synthetic engine run directory (results.csv + manifest.json) and return it."""
    rng = np.random.default_rng(0)
    rows = []
    for i, method in enumerate(methods):
        base = 0.92 - 0.01 * i
        for deployment in deployments:
            common = {"run": "synthetic", "method": method, "task": "sst2", "deployment": deployment,
                      "metric": "accuracy"}
            rows.append({**common, "device": "digital", "chip": -1, "t": 0.0, "t_label": "0s", "value": base})
            for label, t in TIMES.items():
                for chip in range(n_chips):
                    value = base - 0.005 * (i + 1) * np.log10(t) + rng.normal(0, 0.01)
                    rows.append({**common, "device": "pcm", "chip": chip, "t": t, "t_label": label,
                                 "value": value})
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path / "results.csv", index=False)
    manifest = {"run": "synthetic", "task": "sst2", "device": "pcm", "deployment": deployments[0],
                "methods": [{"name": m, "adapter": f"/adapters/{m}"} for m in methods], "n_chips": n_chips, "times": list(TIMES), "seed": 1234,
                "versions": {"analog_peft": "0.1.0", "numpy": np.__version__}, **(manifest_extra or {})}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_report_files_are_self_contained(tmp_path):
    run = make_run(tmp_path / "run")
    files = R.write_report(run, n_boot=N_BOOT)
    assert files.out_dir == run / "report"
    assert files.html.is_file() and files.markdown.is_file()
    assert {p.name for p in files.pngs} == {"metric_vs_time.png", "chips_accuracy.png", "paired_accuracy.png"}
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in files.pngs)

    page = files.html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    images = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == len(re.findall(r"<img", page)) == len(files.pngs)
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for data in images)
    assert "How to read this" in page and "1234" in page and "percentile bootstrap" in page

    markdown = files.markdown.read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(refs) == len(files.pngs)
    assert all((files.markdown.parent / ref).is_file() for ref in refs)


def test_report_tables_match_stats(tmp_path):
    run = make_run(tmp_path / "run")
    files = R.write_report(run, out_dir=tmp_path / "out", n_boot=N_BOOT)
    df = pd.read_csv(run / "results.csv")
    x = df[(df.method == "lora") & (df.t == 3600.0) & (df.chip >= 0)]["value"]
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    row = summary[(summary.method == "lora") & (summary.t == 3600.0)].iloc[0]
    assert row["mean"] == pytest.approx(x.mean()) and row["n"] == 16
    assert f"{x.mean():.4f}" in files.html.read_text() and f"{x.mean():.4f}" in files.markdown.read_text()
    assert list(pd.unique(summary["method"])) == ["grasp", "lora", "bitfit"]  # manifest order
    paired = pd.read_csv(tmp_path / "out" / "paired.csv")
    assert len(paired) == 3 * len(TIMES)
    assert summary["yield"].isna().all()  # no threshold anywhere


def test_report_lists_methods_in_the_run_order_the_engine_writes(tmp_path):
    """The engine's manifest lists methods as {"name", "adapter"} (the report used to ignore them: alphabetical)."""
    run = make_run(tmp_path / "run", methods=("alpha", "mid", "zeta"))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["methods"] = manifest["methods"][::-1]  # the run's order differs from the table's
    (run / "manifest.json").write_text(json.dumps(manifest))
    summary, _ = R.build_tables(*R.load_run(run), n_boot=N_BOOT)
    assert list(dict.fromkeys(summary["method"])) == ["zeta", "mid", "alpha"]
    df, manifest = R.load_run(run)
    df["method"] = df["method"].replace({"mid": "mid@1"})  # replicates of a method keep its place
    df = pd.concat([df, df[df.method == "mid@1"].assign(method="mid@0")])
    assert R._method_order(df, manifest) == ["zeta", "mid@1", "mid@0", "alpha"]


def test_report_threshold_argument(tmp_path):
    run = make_run(tmp_path / "run", manifest_extra={"threshold": 0.5})  # the engine writes none: ignored
    R.write_report(run, formats=("md",), threshold=0.9, n_boot=N_BOOT)
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert (summary["threshold"] == 0.9).all() and summary["yield"].between(0, 1).all()
    assert not (run / "report" / "report.html").exists()
    R.write_report(run, formats=("md",), relative_threshold=0.99, n_boot=N_BOOT)
    summary = pd.read_csv(run / "report" / "summary.csv")
    assert summary["threshold"].to_numpy() == pytest.approx(0.99 * summary["digital"].to_numpy())


def test_report_single_method_and_split_deployments(tmp_path):
    files = R.write_report(make_run(tmp_path / "one", methods=("grasp",)), n_boot=N_BOOT)
    assert len(files.pngs) == 2 and files.html.read_text().count("<img") == 2

    run = make_run(tmp_path / "two", methods=("grasp", "lora"), deployments=("periphery", "fused"))
    files = R.write_report(run, n_boot=N_BOOT)
    summary = pd.read_csv(files.out_dir / "summary.csv")
    assert set(zip(summary.method, summary.deployment, strict=True)) == {
        (m, d) for m in ("grasp", "lora") for d in ("periphery", "fused")}
    paired = pd.read_csv(files.out_dir / "paired.csv")
    assert len(paired) == 2 * len(TIMES) and (paired["n_pairs"] == 16).all()


def test_report_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.csv"):
        R.write_report(tmp_path)
    with pytest.raises(ValueError, match="formats"):
        R.write_report(make_run(tmp_path / "run"), formats=("pdf",))


def test_screenshot_stats_detects_blank(tmp_path):
    from matplotlib.image import imsave

    blank = tmp_path / "blank.png"
    imsave(blank, np.ones((50, 80, 3)))
    stats = screenshot_stats(blank)
    assert stats["non_white_fraction"] == 0 and stats["n_colours"] == 1 and stats["coloured_fraction"] == 0


_HAVE_CHROMIUM = bool(shutil.which("/usr/bin/chromium") or shutil.which("chromium"))


@pytest.mark.slow
@pytest.mark.skipif(not _HAVE_CHROMIUM and not os.environ.get("ANALOG_PEFT_REQUIRE_BROWSER"),
                    reason="Chromium not installed (apt-get install -y chromium; `make test` installs it)")
def test_report_renders_in_chromium(tmp_path):
    # `make test` installs Chromium and sets ANALOG_PEFT_REQUIRE_BROWSER=1: a missing browser fails there
    files = R.write_report(make_run(tmp_path / "run"), n_boot=N_BOOT)
    result = check_report_renders(files.html, tmp_path / "shot.png")
    assert result["ok"], result["problems"]
    assert result["n_images"] == result["n_images_decoded"] == 3
    assert result["non_white_fraction"] > 0.05 and result["n_colours"] > 200

    broken = tmp_path / "broken.html"  # an undecodable image and nothing drawn must fail the check
    broken.write_text('<html><body><img src="data:image/png;base64,AAAA"></body></html>')
    bad = check_report_renders(broken, tmp_path / "broken.png")
    assert not bad["ok"] and bad["n_images_decoded"] == 0


def test_an_interrupted_report_leaves_the_previous_files_intact(tmp_path, monkeypatch):
    from conftest import DiesMidWrite

    from analog_peft.montecarlo import files as F

    run = make_run(tmp_path / "run")
    files = R.write_report(run, n_boot=N_BOOT)
    written = [files.html, files.markdown, *files.pngs, *files.tables]
    before = {p: p.read_bytes() for p in written}
    real_fdopen = F.os.fdopen

    for k in range(len(written)):  # die while writing the k-th file
        calls = iter(range(len(written)))

        def fdopen(fd, *args, _k=k, _calls=calls, **kw):
            f = real_fdopen(fd, *args, **kw)
            return DiesMidWrite(f) if next(_calls) == _k else f

        monkeypatch.setattr(F.os, "fdopen", fdopen)
        with pytest.raises(KeyboardInterrupt):
            R.write_report(run, n_boot=N_BOOT)
        assert {p: p.read_bytes() for p in written} == before, k
        assert not list(files.out_dir.glob(".*.tmp")), k


def test_method_names_that_read_as_missing_are_kept(tmp_path):
    run = make_run(tmp_path / "run", methods=("nan", "NA", "None"))
    df, _ = R.load_run(run)
    assert list(pd.unique(df.method)) == ["nan", "NA", "None"] and df.method.notna().all()
    files = R.write_report(run, n_boot=N_BOOT)
    summary = pd.read_csv(files.out_dir / "summary.csv", keep_default_na=False)
    assert list(pd.unique(summary.method)) == ["nan", "NA", "None"]
    paired = pd.read_csv(files.out_dir / "paired.csv", keep_default_na=False)
    assert {(a, b) for a, b in zip(paired.a, paired.b, strict=True)} == {("nan", "NA"), ("nan", "None"),
                                                                          ("NA", "None")}
    assert "<td>nan</td>" in files.html.read_text() and "| NA |" in files.markdown.read_text()


def make_per_example_run(path: Path, n_chips: int = 6, n_ex: int = 40) -> Path:
    """A synthetic run with per-example predictions; its results.csv rows are computed from them."""
    from analog_peft.montecarlo.examples import encode_arrays
    from analog_peft.tasks.metrics import classification_metrics

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, n_ex)
    methods, times = ["grasp@0", "grasp@1", "lora@0", "lora@1"], [1.0, 86400.0]
    flip = rng.random((4, n_chips, 2, n_ex)) < np.array([0.1, 0.15, 0.25, 0.2])[:, None, None, None]
    pred = np.where(flip, 1 - labels, labels).astype(np.int16)
    digital = np.where(rng.random((4, n_ex)) < 0.05, 1 - labels, labels).astype(np.int16)
    rows = []
    for i, m in enumerate(methods):
        common = {"run": "syn", "method": m, "task": "sst2", "deployment": "periphery"}
        for metric, v in classification_metrics(digital[i].tolist(), labels.tolist()).items():
            rows.append({**common, "device": "digital", "chip": -1, "t": 0.0, "t_label": "0s", "metric": metric,
                         "value": v})
        for c in range(n_chips):
            for k, (t, label) in enumerate(zip(times, ("1s", "1d"), strict=True)):
                for metric, v in classification_metrics(pred[i, c, k].tolist(), labels.tolist()).items():
                    rows.append({**common, "device": "pcm", "chip": c, "t": t, "t_label": label, "metric": metric,
                                 "value": v})
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(path / "results.csv", index=False)
    (path / "manifest.json").write_text(json.dumps({"run": "syn", "eval_set_size": n_ex, "methods": methods}))
    (path / "per_example.npz").write_bytes(encode_arrays(
        pred=pred, loss=np.zeros(pred.shape, np.float16), chips=np.arange(n_chips),
        methods=np.array(methods), times=np.array(times), labels=labels, kind=np.asarray("classification")))
    return path


def test_report_with_per_example_scores_and_seeds(tmp_path):
    run = make_per_example_run(tmp_path / "run")
    files = R.write_report(run, relative_threshold=0.95, threshold=0.8, n_boot=N_BOOT, n_boot_hier=100,
                           target_ci_width=0.05)
    page = files.markdown.read_text()
    for text in ("CI (all sources)", "p (Holm)", "Family of comparisons: all 4 paired tests", "yield (common)",
                 "How many chips", "seed share", "percentile bootstrap over training seeds × chips × examples",
                 "Examples that flip across chips"):
        assert text in page, text
    hier = pd.read_csv(files.out_dir / "hierarchical.csv")
    assert set(hier["method"]) == {"grasp", "lora"} and hier.set_index("method").loc["grasp", "n_seeds"].min() == 2
    paired = pd.read_csv(files.out_dir / "paired.csv")
    assert set(zip(paired.a, paired.b, strict=True)) == {("grasp", "lora")}  # replicates averaged per chip
    assert (paired[paired.metric == "accuracy"]["test_on"] == "counts").all()  # counts out of 2 seeds × 40
    collapsed = pd.read_csv(run / "results.csv").query("chip >= 0 and metric == 'accuracy' and t == 1.0")
    counts = (collapsed.assign(method=collapsed.method.str[:-2]).groupby(["method", "chip"])["value"].sum() * 40)
    diff = np.rint(counts["grasp"].to_numpy() - counts["lora"].to_numpy())
    p_1s = paired[(paired.metric == "accuracy") & (paired.t == 1.0)]["wilcoxon_p"].iloc[0]
    assert p_1s == pytest.approx(sps.wilcoxon(diff).pvalue if diff.any() else 1.0, rel=1e-12)
    sizes = pd.read_csv(files.out_dir / "sample_size.csv")
    assert {"chips_for_width", "chips_for_width_all"} <= set(sizes.columns) and (sizes["target_width"] == 0.05).all()
    yields = pd.read_csv(files.out_dir / "yield.csv")
    best = pd.read_csv(run / "results.csv").query("chip == -1").groupby("metric")["value"].max()
    assert (yields["ref_common"] == yields["metric"].map(best)).all()


def test_committed_study_is_re_reported_chip_level_only(tmp_path):
    src = Path(__file__).resolve().parents[1] / "docs" / "montecarlo_sst2_pcm"
    run = tmp_path / "old"
    run.mkdir()
    for name in ("results.csv", "manifest.json"):
        shutil.copy(src / name, run / name)
    files = R.write_report(run, formats=("md",), relative_threshold=0.95, n_boot=N_BOOT)
    page = files.markdown.read_text()
    assert "Chip-level statistics only" in page and "Family of comparisons: all 12 paired tests" in page
    paired = pd.read_csv(files.out_dir / "paired.csv")
    assert (paired[paired.metric == "accuracy"]["test_on"] == "counts").all()
    assert (paired["p_holm"] >= paired["wilcoxon_p"]).all()
    assert not (files.out_dir / "hierarchical.csv").exists()
