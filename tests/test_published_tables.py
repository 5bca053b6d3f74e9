"""The published tables are what their scripts make of the committed data: each study's ``report`` is re-run on a
copy of its committed folder and must write byte-identical tables and CSVs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: (script, its report arguments besides --out, committed folder, files the report writes)
STUDIES = [
    ("stochgrasp_study.py", ["--artifacts", str(REPO / "artifacts/sst2_sg")], "docs/stochgrasp_variants",
     ("tables.md", "training.csv", "chips_summary.csv", "paired_vs_grasp.csv", "paired_vs_grasp_inj.csv")),
    ("hardware_comparison.py", [], "docs/hardware_comparison", ("tables.md", "summary.csv")),
    ("methods_study.py", [], "docs/methods_side_by_side", ("tables.md", "methods.csv")),
    ("decoder_methods.py", [], "docs/decoder_methods", ("tables.md", "summary.csv", "paired.csv")),
    ("robustness_study.py", [], "docs/robustness", ("tables.md", "summary.csv", "paired_vs_grasp.csv", "fidelity.csv")),
    ("layer_sensitivity.py", ["--runs", str(REPO / "docs/layer_sensitivity/runs")], "docs/layer_sensitivity",
     ("tables.md", "scopes.csv", "keep_digital.csv", "keep_digital_held_out.csv", "top_vs_random_held_out.csv",
      "layer_loss_grid.csv", "ranking.json")),
]


@pytest.mark.parametrize("script, extra, folder, files", STUDIES, ids=[s[0] for s in STUDIES])
def test_report_regenerates_the_committed_tables(tmp_path, script, extra, folder, files):
    committed = REPO / folder
    if not (committed / "tables.md").is_file():
        pytest.fail(f"{folder}/tables.md is not committed: run {script} and its report")
    out = tmp_path / "out"
    shutil.copytree(committed, out)
    for f in files:
        (out / f).unlink()
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), "report", "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for f in files:
        assert (out / f).read_bytes() == (committed / f).read_bytes(), f"{folder}/{f} differs from its data"
