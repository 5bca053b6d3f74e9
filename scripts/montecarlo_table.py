"""Print docs/montecarlo.md's results table (accuracy, %) from a Monte Carlo report directory.

    .venv/bin/python scripts/montecarlo_table.py runs/mc_sst2_pcm/report --a stochgrasp --b grasp

Columns: per method mean [95 % CI] and p5 / worst chip; then the paired difference a − b with its CI, the
Wilcoxon p and the fraction of chips a won; then the yield line. Reads ``summary.csv`` and ``paired.csv``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

LABELS = {"grasp": "GRASP", "stochgrasp": "StochGRASP"}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def table(report: Path, a: str, b: str, metric: str = "accuracy") -> str:
    s = pd.read_csv(report / "summary.csv", keep_default_na=False)
    p = pd.read_csv(report / "paired.csv", keep_default_na=False)
    s, p = s[s.metric == metric], p[p.metric == metric]
    names = [b, a]
    head = "| t | " + " | ".join(f"{LABELS.get(m, m)} mean [95 % CI] | {LABELS.get(m, m)} p5 / worst" for m in names)
    head += f" | {LABELS.get(a, a)} − {LABELS.get(b, b)} [95 % CI], Wilcoxon p, chips won |"
    lines = [head, "|" + "---|" * (2 * len(names) + 2)]
    digital = [_pct(float(s[s.method == m].digital.iloc[0])) for m in names]
    lines.append("| digital | " + " | ".join(f"{d} | " for d in digital) + " |")
    for t, label in s[["t", "t_label"]].drop_duplicates().sort_values("t").itertuples(index=False):
        cells = []
        for m in names:
            r = s[(s.method == m) & (s.t == t)].iloc[0]
            cells += [f"{_pct(r['mean'])} [{_pct(r.ci_low)}, {_pct(r.ci_high)}]", f"{_pct(r.p5)} / {_pct(r['min'])}"]
        q = p[(p.t == t) & (((p.a == a) & (p.b == b)) | ((p.a == b) & (p.b == a)))].iloc[0]
        sign = 1 if q.a == a else -1
        lo, hi = sorted((sign * q.ci_low, sign * q.ci_high))
        won = q.frac_a_gt_b if sign == 1 else 1 - q.frac_a_gt_b - q.frac_ties
        cells.append(f"{100 * sign * q.mean_diff:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}], "
                     f"p = {q.wilcoxon_p:.2g}, {100 * won:.0f} %")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    yields = {m: " / ".join(f"{100 * y:.0f}" for y in s[s.method == m].sort_values("t")["yield"]) for m in names}
    lines.append("")
    lines.append("Yield at ≥ the report's threshold: " + ", ".join(f"{LABELS.get(m, m)} {y} %" for m, y in yields.items()))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", type=Path)
    ap.add_argument("--a", default="stochgrasp")
    ap.add_argument("--b", default="grasp")
    ap.add_argument("--metric", default="accuracy")
    args = ap.parse_args()
    print(table(args.report, args.a, args.b, args.metric))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
