"""Re-test the paired comparisons of docs/results.md (b) with the statistics of issue 15.

The family: the 4 method pairs of the robustness tables × every study (5 Gaussian noise levels) and every PCM
time (6), i.e. 44 paired Wilcoxon tests on the same 50 chips per study. Each test is re-run on the integer
numbers of correct examples (accuracy × eval-set size), and Holm's adjustment is applied over all 44.
Prints a Markdown table (the runs have no per-example scores, so the CIs stay chip-level: see
docs/montecarlo.md).

    .venv/bin/python scripts/holm_results.py [docs/results_data/mc]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from analog_peft.montecarlo import stats
from analog_peft.montecarlo.files import read_results_csv

PAIRS = [("StochGRASP", "GRASP"), ("GRASP+inj", "GRASP"), ("StochGRASP+inj", "GRASP+inj"),
         ("StochGRASP+inj", "GRASP")]
STUDIES = ["gauss_layer_max_0.001", "gauss_layer_max_0.002", "gauss_layer_max_0.005", "gauss_layer_max_0.01",
           "gauss_column_max_0.01", "pcm", "pcm_more"]


def family(root: Path) -> pd.DataFrame:
    """Every paired test of the family, on values (as published) and on counts, with Holm over the counts."""
    frames = []
    for study in STUDIES:
        df = read_results_csv(root / study / "results.csv")
        n = json.loads((root / study / "manifest.json").read_text())["eval_set_size"]
        for a, b in PAIRS:
            on_values = stats.paired(df, a, b, metric="accuracy", n_boot=9999)
            on_counts = stats.paired(df, a, b, metric="accuracy", n_boot=9999, n_examples=n)
            frames.append(on_counts.assign(study=study, p_values=on_values["wilcoxon_p"].to_numpy()))
    table = pd.concat(frames, ignore_index=True)
    return stats.add_holm(table)


def markdown(table: pd.DataFrame) -> str:
    lines = [stats.family_text(table, over=("study", "t")), "",
             "| study | t | a − b | Δ (points) [95 % CI, chips] | p (floats, as published) | p (counts) | p (Holm) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in table.itertuples():
        lines.append(f"| {r.study} | {r.t_label} | {r.a} − {r.b} | {100 * r.mean_diff:+.2f} [{100 * r.ci_low:+.2f}, "
                     f"{100 * r.ci_high:+.2f}] | {r.p_values:.3g} | {r.wilcoxon_p:.3g} | {r.p_holm:.3g} |")
    return "\n".join(lines)


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results_data/mc")
    print(markdown(family(root)))
