"""Re-run the first chips of committed Monte Carlo tables with the current code and compare every row exactly.

A guard for "no behaviour change": chip seeds must give the same results as when the tables were made.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/check_published_mc.py docs/results_data/mc/pcm:4 \\
        docs/montecarlo_sst2_pcm:2

Each argument is ``RUN_DIR:CHIPS`` (a directory with ``manifest.json`` and ``results.csv``). The committed
tables were made with ``OMP_NUM_THREADS=1``; PCM bits depend on torch's thread count, so use the same.
Exit status 1 if any row differs.
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


def check(run_dir: Path, chips: int, scratch: Path) -> int:
    """Number of rows of the first ``chips`` chips (and the digital rows) that differ."""
    config = json.loads((run_dir / "manifest.json").read_text())["config"]
    config["n_chips"] = chips
    new = run_montecarlo(MonteCarloConfig.from_dict(config), scratch / run_dir.name, progress=False)
    old = read_results_csv(run_dir / "results.csv")
    old = old[old.chip < chips].set_index(KEY).sort_index()["value"].rename("committed")
    new = new.set_index(KEY).sort_index()["value"].rename("now")
    both = pd.concat([old, new], axis=1)
    differ = both[~(both.committed == both.now)]
    print(f"{run_dir}: {len(both)} rows, {len(both) - len(differ)} identical, {len(differ)} differ")
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
