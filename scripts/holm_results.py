"""Re-test the paired comparisons of docs/results.md (b) with the statistics of issue 15.

The family: the 4 method pairs of the robustness tables × every study (5 Gaussian noise levels) and every PCM
time (6), i.e. 44 paired Wilcoxon tests on the same 50 chips per study, each on the integer numbers of correct
examples (accuracy × eval-set size), Holm's adjustment over all 44 (``results.family``). Prints a Markdown table
(the runs have no per-example scores, so the CIs stay chip-level: see docs/montecarlo.md).

    .venv/bin/python scripts/holm_results.py [docs/results_data/mc]
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import family  # noqa: E402

from analog_peft.montecarlo import stats  # noqa: E402


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
