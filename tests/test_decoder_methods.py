"""scripts/decoder_methods.py pairs a second decoder study with the committed one only on the same chips: a manifest
field that changes the chips, a re-run that differs from the committed rows, or another chip set is refused with
one line naming it (the byte-identical regeneration of the tables is in test_published_tables.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "docs/decoder_methods"
SCRIPT = REPO / "scripts/decoder_methods.py"


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    if not (COMMITTED / "tables.md").is_file():
        pytest.fail("docs/decoder_methods is not committed: run decoder_methods.py run, then its report")
    out = tmp_path / "out"
    shutil.copytree(COMMITTED, out)
    return out


def _report(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "report", "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_a_field_that_changes_the_chips_is_refused(copy: Path):
    path = copy / "mc/smollm2_stochgrasp_e2e_gen/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["seed"] = 1
    path.write_text(json.dumps(manifest))
    proc = _report(copy)
    assert proc.returncode != 0 and "do not share chips: seed is 0 vs 1" in proc.stderr


def test_a_rerun_that_differs_from_the_committed_rows_is_refused(copy: Path):
    path = copy / "mc/check_grasp_chip0/results.csv"
    df = pd.read_csv(path)
    df.loc[df["chip"] == 0, "value"] += 1e-12
    df.to_csv(path, index=False)
    proc = _report(copy)
    assert proc.returncode != 0 and "the re-run differs from the committed study" in proc.stderr


def test_another_chip_set_is_refused(copy: Path):
    path = copy / "mc/smollm2_stochgrasp_e2e_gen/results.csv"
    df = pd.read_csv(path)
    df[df["chip"] != df["chip"].max()].to_csv(path, index=False)
    proc = _report(copy)
    assert proc.returncode != 0 and "the studies scored different chips" in proc.stderr
