"""Report sections of decoder studies: per-chip spread and example generations (digital vs the worst chip).

The metric-vs-time bands, per-chip distributions and paired tables of the report are generic (they read
``results.csv``); this module adds what only a decoder run has: the generations kept in ``outputs.npz``.
For each method, at the last inference time, the chip with the lowest primary metric (BLEU; for a
perplexity run the highest perplexity) is the *worst chip*; a few MRs are listed with the digital output
and that chip's output side by side, choosing the MRs where the two differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .report_tables import Section

OUTPUTS_FILE = "outputs.npz"
#: MRs shown per method in the side-by-side table
N_EXAMPLES = 4

__all__ = ["decoder_sections", "worst_chips"]


def worst_chips(df: pd.DataFrame, metric: str, lower_is_better: bool = False) -> pd.DataFrame:
    """Per method and time: the chip with the worst ``metric`` (``method, t, chip, value``)."""
    rows = df[(df.chip >= 0) & (df.metric == metric)]
    if rows.empty:
        return pd.DataFrame(columns=["method", "t", "chip", "value"])
    pick = rows.groupby(["method", "t"])["value"].idxmax() if lower_is_better else \
        rows.groupby(["method", "t"])["value"].idxmin()
    return rows.loc[pick, ["method", "t", "chip", "value"]].reset_index(drop=True)


def _spread_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per method, metric and time: digital, chip mean, min, max and the sd across chips."""
    analog = df[df.chip >= 0]
    table = analog.groupby(["method", "metric", "t_label", "t"])["value"].agg(["mean", "std", "min", "max", "count"])
    table = table.reset_index().sort_values(["method", "metric", "t"], kind="stable")
    digital = df[df.chip == -1].set_index(["method", "metric"])["value"]
    table.insert(3, "digital", [digital.get((m, k), np.nan) for m, k in zip(table.method, table.metric, strict=True)])
    table = table.drop(columns="t").rename(columns={"t_label": "t", "count": "chips", "std": "sd across chips"})
    for col in ("digital", "mean", "sd across chips", "min", "max"):
        table[col] = table[col].map(lambda x: f"{x:.4g}")
    return table


def _examples_table(run_dir: Path, df: pd.DataFrame, metric: str) -> pd.DataFrame | None:
    """Digital vs worst-chip generations at the last time, a few MRs per method (None without outputs)."""
    path = run_dir / OUTPUTS_FILE
    if not path.is_file() or not (run_dir / "examples.csv").is_file():
        return None
    with np.load(path) as z:
        if "text" not in z or "digital_text" not in z:
            return None
        text, digital, chips = z["text"], z["digital_text"], z["chips"].tolist()
        methods, times = [str(m) for m in z["methods"]], z["times"].astype(float)
    mrs = pd.read_csv(run_dir / "examples.csv", keep_default_na=False)["text"].tolist()
    worst = worst_chips(df, metric)
    last = float(times[-1])
    rows: list[dict[str, Any]] = []
    for m, name in enumerate(methods):
        hit = worst[(worst.method == name) & np.isclose(worst.t, last)]
        if hit.empty or int(hit.chip.iloc[0]) not in chips:
            continue
        chip = int(hit.chip.iloc[0])
        on_chip = text[m, chips.index(chip), len(times) - 1]
        differ = [i for i in range(len(mrs)) if on_chip[i] != digital[m, i]]
        for i in (differ or list(range(len(mrs))))[:N_EXAMPLES]:
            rows.append({"method": name, "MR": mrs[i], "digital": digital[m, i],
                         f"worst chip (chip, {metric})": f"{on_chip[i]}  [chip {chip}, {hit.value.iloc[0]:.3f}]"})
    return pd.DataFrame(rows) if rows else None


def decoder_sections(run_dir: str | Path, df: pd.DataFrame, manifest: dict[str, Any]) -> list[Section]:
    """The sections of a decoder run (empty for a classifier run)."""
    from .decoders import manifest_kind

    run_dir = Path(run_dir)
    kind = manifest_kind(run_dir)
    if kind is None:
        return []
    sections = [Section("Per-chip spread", [
        "Each metric per method and inference time: the digital value, the mean over chips, the sd across chips "
        "and the worst / best chip." + (" Perplexity and NLL: lower is better (yield thresholds and 'worst' in "
                                        "the generic tables assume higher is better)." if kind == "lm" else "")],
        _spread_table(df))]
    if kind == "generation":
        metric = "BLEU" if "BLEU" in set(df.metric) else str(df.metric.iloc[0])
        table = _examples_table(run_dir, df, metric)
        if table is not None:
            sections.append(Section("Example outputs: digital vs the worst chip", [
                f"At the last inference time, the chip with the lowest {metric} of each method; MRs whose output "
                "there differs from the digital output (the first ones in length order). All generations: "
                f"`{OUTPUTS_FILE}` (`text[method, chip, time, example]`, `digital_text`)."], table))
    return sections


def decoder_statistics_note(run_dir: str | Path, sections: list[Section]) -> list[Section]:
    """``sections`` with the 'Statistics used' text of a decoder run (corpus metrics: chip-level by design)."""
    from .decoders import manifest_kind

    if manifest_kind(Path(run_dir)) is None:
        return sections
    note = Section("Statistics used", [
        "**Chip-level statistics.** BLEU, NIST, METEOR, ROUGE-L and CIDEr are corpus metrics and perplexity is "
        "a token-weighted mean, so the CIs resample chips only (the sampling error of the MRs or texts is not "
        "included); the generations and per-text losses are kept in `outputs.npz` for any resampling of your "
        "own."])
    return [note if s.title == "Statistics used" else s for s in sections]
