"""The fidelity question of issue 19, in one place for every study that asks it: does a noise-aware method beat
deterministic GRASP by ≥ 3 points in mean, ≥ 5 at the 5th-percentile chip, with Holm-adjusted p < 0.01, and with
≥ 2× GRASP's yield at one of the common thresholds?"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: the bar: mean and p5 differences (fractions), adjusted p, yield ratio
BAR = {"mean": 0.03, "p5": 0.05, "p": 0.01, "yield_ratio": 2.0}


def yield_col(r: float) -> str:
    """The column of the yield at relative threshold ``r`` (``0.95`` → ``yield_95``)."""
    return f"yield_{round(100 * r)}"


def yield_ratios(mine: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Yield ratios per threshold: ``inf`` when only the reference is 0, ``nan`` when both are."""
    return [m / g if g > 0 else (math.inf if m > 0 else math.nan) for m, g in zip(mine, reference, strict=True)]


def criteria(mean_diff: float, p5_diff: float, p_holm: float, ratios: Sequence[float]) -> dict[str, bool]:
    """Each criterion met or not, and all four (a significant loss does not count as significant)."""
    ok = {"mean_ok": mean_diff >= BAR["mean"], "p5_ok": p5_diff >= BAR["p5"],
          "p_ok": bool(p_holm < BAR["p"] and mean_diff > 0),
          "yield_ok": any(x >= BAR["yield_ratio"] for x in ratios if not math.isnan(x))}
    return {**ok, "all_ok": all(ok.values())}
