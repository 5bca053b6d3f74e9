"""Re-run the first chips of committed Monte Carlo tables with the current code and compare every row exactly.

A guard for "no behaviour change": chip seeds must give the same results as when the tables were made,
on any machine: chips are the same bits on every CPU (``device_models.portable``), and each chip is
evaluated on one torch thread.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/check_published_mc.py docs/results_data/mc/pcm:4 \\
        docs/montecarlo_sst2_pcm:2

Each argument is ``RUN_DIR:CHIPS`` (a directory with ``manifest.json`` and ``results.csv``). Adapter and
data paths recorded on another machine are mapped into this checkout. Exit status 1 if any row differs.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analog_peft.montecarlo.engine import MonteCarloConfig, run_montecarlo  # noqa: E402
from analog_peft.montecarlo.files import read_results_csv  # noqa: E402

KEY = ["method", "chip", "t", "metric"]


REPO = Path(__file__).resolve().parents[1]


def _local(path: str | None, kind: str) -> str | None:
    """A path recorded on the machine that made the table, found in this checkout (absolute paths of
    another clone are mapped by their ``artifacts/`` or ``runs/`` part; a missing data folder falls back to
    the default data resolution, and the eval-set sha256 then checks it is the same data)."""
    if path is None or Path(path).exists():
        return path
    if kind == "data":
        return None
    for anchor in ("artifacts/", "runs/"):
        if anchor in path:
            local = REPO / (anchor + path.split(anchor, 1)[1])
            if local.exists():
                return str(local)
    raise SystemExit(f"adapter {path} of a committed table is not in this checkout: train or restore it first")


def check(run_dir: Path, chips: int, scratch: Path) -> int:
    """Number of rows of the first ``chips`` chips (and the digital rows) that differ."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    config = manifest["config"]
    config["n_chips"] = chips
    config["data_dir"] = _local(config.get("data_dir"), "data")
    for m in config["methods"]:
        m["adapter"] = _local(m.get("adapter"), "adapter")
    out = scratch / run_dir.name
    new = run_montecarlo(MonteCarloConfig.from_dict(config), out, progress=False)
    now = json.loads((out / "manifest.json").read_text())
    if manifest.get("eval_set_sha256") not in (None, now["eval_set_sha256"]):
        print(f"{run_dir}: the evaluation set differs from the committed one (sha256)")
        return 1
    old = read_results_csv(run_dir / "results.csv")
    old = old[old.chip < chips].set_index(KEY).sort_index()["value"].rename("committed")
    new = new.set_index(KEY).sort_index()["value"].rename("now")
    both = pd.concat([old, new], axis=1)
    differ = both[~(both.committed == both.now)]
    made, here = manifest.get("platform", {}), now["platform"]
    print(f"{run_dir}: {len(both)} rows, {len(both) - len(differ)} identical, {len(differ)} differ "
          f"(made with chip scheme {made.get('chip_scheme', 'torch-0 (before portable)')} on "
          f"{made.get('cpu_isa', '?')}; checked on {here['cpu_isa']}, {here['cpu']})")
    if len(differ):
        print(differ.head(20).to_string())
    return len(differ)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        bad = 0
        for arg in argv:
            path, _, chips = arg.rpartition(":")
            bad += check(Path(path), int(chips), Path(tmp))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
