"""The report's statistics sections beyond the chip-level tables: every source of variance, multiplicity,
yield against common references, sample size, and the sequential stopping rule (see :mod:`.stats`).

Each section is a :class:`Section` (title, paragraphs, an optional display table) that :mod:`.report`
renders to HTML and Markdown; :func:`build_sections` also returns the full-precision tables it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import stats
from .examples import PerExample, flipping_examples

__all__ = ["Section", "StatsOptions", "build_sections", "paired_tables"]

#: CI width of the sample-size table when neither the caller nor the run's sequential rule gives one
DEFAULT_WIDTH = 0.01


@dataclass
class Section:
    """One report section: a title, paragraphs (Markdown inline: ``**bold**``, ``*italic*``, `` `code` ``)
    and optionally a table (already formatted for display)."""

    title: str
    paragraphs: list[str]
    table: pd.DataFrame | None = None
    extra_tables: list[pd.DataFrame] = field(default_factory=list)


@dataclass
class StatsOptions:
    """What the sections compute: yield thresholds and reference, the sample-size width, resamples."""

    threshold: float | None = None
    relative_threshold: float | None = None
    reference: str = "best"
    target_ci_width: float | None = None
    n_boot: int = 2000
    seed: int = 0
    ci: float = 0.95


def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, float | np.floating):
        return "–" if np.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def _pct(x: float) -> str:
    return "–" if np.isnan(x) else f"{100 * x:.0f}%"


def _ci(lo: float, hi: float) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _chips(n: float) -> str:
    if np.isnan(n):
        return "–"
    return "∞ (not by chips)" if np.isinf(n) else f"{int(n)}"


def n_examples_of(manifest: dict[str, Any], data: PerExample | None) -> int | None:
    """Examples per chip value: from the per-example data, else the manifest's ``eval_set_size``."""
    if data is not None:
        return int(data.labels.size)
    size = manifest.get("eval_set_size")
    return int(size) if isinstance(size, int | float) and size > 0 else None


# ------------------------------------------------------------------------------------------------ paired
def paired_tables(df: pd.DataFrame, manifest: dict[str, Any], methods: list[str], by: list[str],
                  n_boot: int, seed: int, data: PerExample | None) -> pd.DataFrame:
    """The chip-level paired table (replicates averaged per chip), tests on counts where possible, Holm."""
    collapsed = stats.collapse_replicates(df)
    bases = list(dict.fromkeys(stats.replicate_of(m)[0] for m in methods))
    paired = stats.paired_all(collapsed, by=by, methods=bases, n_boot=n_boot, seed=seed,
                              n_examples=n_examples_of(manifest, data))
    return stats.add_holm(paired) if not paired.empty else paired


# -------------------------------------------------------------------------------------------- variance
def _scope_section(data: PerExample | None, opts: StatsOptions) -> Section:
    if data is None:
        return Section("Statistics used", [
            "**Chip-level statistics only.** This run has no per-example scores (`per_example.npz`; runs made "
            "before they were kept): every CI resamples chips only, so the sampling error of the evaluation "
            "sentences (and of training seeds) is *not* included, and the sample-size table below uses the "
            "chip-level variance alone. Re-run the study to get the hierarchical statistics."])
    seeds = "training seeds × " if data.methods != [stats.replicate_of(m)[0] for m in data.methods] else ""
    return Section("Statistics used", [
        f"Per-example scores are kept ({data.labels.size} examples × {data.chips.size} chips): the "
        f"**CI (all sources)** is a hierarchical percentile bootstrap over {seeds}chips × examples "
        f"({opts.n_boot} resamples, seed {opts.seed}; seeds, then chips, then examples are drawn with "
        "replacement and the metric is recomputed on the resampled examples). **CI (chips)** resamples chips "
        "only: the uncertainty about the average chip *on this evaluation set* with these adapters.",
        "The **variance shares** are the bootstrap variances of the estimate when only chips, only examples or "
        "only seeds are resampled, as fractions of their sum."])


def _hier_display(hier: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    chip = summary.groupby(["metric", "method", "t"])[["ci_low", "ci_high"]].first() if "method" in summary else None
    rows = []
    for r in hier.itertuples():
        key = (r.metric, r.method, r.t)
        chip_ci = _ci(*chip.loc[key]) if chip is not None and key in chip.index and r.n_seeds == 1 else "–"
        rows.append({"metric": r.metric, "method": r.method, "t": r.t_label, "seeds": r.n_seeds,
                     "chips": r.n_chips, "examples": r.n_examples, "estimate": _fmt(r.estimate),
                     "CI (chips)": chip_ci, "CI (all sources)": _ci(r.ci_low, r.ci_high),
                     "chip share": _pct(r.share_chip), "example share": _pct(r.share_example),
                     "seed share": _pct(r.share_seed)})
    return pd.DataFrame(rows)


def _hier_pair_display(hp: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in hp.itertuples():
        rows.append({"metric": r.metric, "a − b": f"{r.a} − {r.b}", "t": r.t_label, "estimate": _fmt(r.estimate),
                     "CI (all sources)": _ci(r.ci_low, r.ci_high), "chip share": _pct(r.share_chip),
                     "example share": _pct(r.share_example), "seed share": _pct(r.share_seed)})
    return pd.DataFrame(rows)


def variance_sections(df: pd.DataFrame, summary: pd.DataFrame, paired: pd.DataFrame, data: PerExample | None,
                      opts: StatsOptions) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    """"Statistics used" and, with per-example data, the all-sources CIs of means and paired differences."""
    sections, tables = [_scope_section(data, opts)], {}
    if data is None:
        return sections, tables
    hier = stats.hierarchical_summary(df, data, n_boot=opts.n_boot, seed=opts.seed, ci=opts.ci)
    tables["hierarchical.csv"] = hier
    sections.append(Section("Every source of variance: CIs of the means", [
        "Estimate = the metric averaged over seeds and chips (the chip-level mean for one seed)."],
        _hier_display(hier, summary)))
    methods = list(stats.hierarchical.method_groups(pd.unique(stats.analog_rows(df)["method"])))
    if len(methods) > 1:
        hp = stats.hierarchical_paired_all(df, data, methods=methods, n_boot=opts.n_boot, seed=opts.seed, ci=opts.ci)
        tables["hierarchical_paired.csv"] = hp
        sections.append(Section("Every source of variance: CIs of the paired differences", [
            "Both methods are resampled on the same chips and the same examples (their seeds separately)."],
            _hier_pair_display(hp, paired)))
    return sections, tables


# ------------------------------------------------------------------------------------------------ yield
def yield_section(df: pd.DataFrame, opts: StatsOptions) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    """Absolute, own-digital and common-reference yields side by side (nothing without a threshold)."""
    if opts.threshold is None and opts.relative_threshold is None:
        return [], {}
    table = stats.yield_table(df, threshold=opts.threshold, relative_threshold=opts.relative_threshold,
                              reference=opts.reference)
    text = []
    if opts.threshold is not None:
        text.append(f"**absolute**: share of chips with value ≥ {opts.threshold:g}.")
    if opts.relative_threshold is not None:
        ref = "the best digital score of all methods" if opts.reference == "best" else \
            f"the digital score of {opts.reference}"
        r = opts.relative_threshold
        text.append(f"**relative** (r = {r:g}): value ≥ ref − {1 - r:.3g} × |ref| (= {r:g} × ref for ref > 0; for "
                    "a metric that can be negative, such as MCC, the allowed drop stays a fraction of |ref|). "
                    f"**own**: ref = the method's own digital score (rewards a worse clean model); **common**: ref "
                    f"= {ref}, the same bar for every method.")
    display = table[["metric", "method", "t_label", "n"]].rename(columns={"t_label": "t", "n": "chips"})
    if opts.threshold is not None:
        display["yield (absolute)"] = table["yield_abs"].map(_pct)
    if opts.relative_threshold is not None:
        for kind in ("own", "common"):
            display[f"yield ({kind})"] = [f"{_pct(y)} (≥ {_fmt(b)})"
                                          for y, b in zip(table[f"yield_{kind}"], table[f"threshold_{kind}"],
                                                          strict=True)]
    return [Section("Yield", text, display)], {"yield.csv": table}


# ------------------------------------------------------------------------------------------ sample size
def _width(opts: StatsOptions, manifest: dict[str, Any]) -> float:
    if opts.target_ci_width is not None:
        return float(opts.target_ci_width)
    seq = manifest.get("sequential")
    if isinstance(seq, dict) and seq.get("target_ci_width"):
        return float(seq["target_ci_width"])
    return DEFAULT_WIDTH


def _size_table(summary: pd.DataFrame, tables: dict[str, pd.DataFrame], width: float, ci: float) -> pd.DataFrame:
    """Chips needed per method (and paired difference), metric and time: from the hierarchical tables when
    there are some, else from the chip-level summary."""
    hier = tables.get("hierarchical.csv")
    if hier is not None:
        pairs = tables.get("hierarchical_paired.csv")
        if pairs is not None and not pairs.empty:
            pairs = pairs.assign(method=[f"{a} − {b}" for a, b in zip(pairs["a"], pairs["b"], strict=True)])
            hier = pd.concat([hier, pairs.drop(columns=["a", "b", "n_seeds_b"], errors="ignore")], ignore_index=True)
        return stats.add_sample_size(hier, width, ci)
    base = summary.rename(columns={"std": "sd_chip_values"})
    return stats.add_sample_size(base[["metric", "method", "t", "t_label", "n", "sd_chip_values"]], width, ci)


def sample_size_section(summary: pd.DataFrame, tables: dict[str, pd.DataFrame], manifest: dict[str, Any],
                        opts: StatsOptions) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    """"For a CI W wide you need ≈ n chips", from this run as the pilot."""
    width = _width(opts, manifest)
    table = _size_table(summary, tables, width, opts.ci)
    n_now = table["n_chips"] if "n_chips" in table else table["n"]
    display = pd.DataFrame({"metric": table["metric"], "method": table["method"], "t": table["t_label"],
                            "chips run": n_now, "sd of chip values": table["sd_chip_values"].map(_fmt),
                            f"chips for CI (chips) ≤ {width:g}": table["chips_for_width"].map(_chips)})
    text = [f"From this run as a pilot: for a 95 % CI of the mean at most **{width:g}** wide (± {width / 2:g}) you "
            "need ≈ n chips, n = σ²_chip / (W / 2z)², σ_chip = the sd of the per-chip values (normal "
            "approximation; the estimate is as noisy as σ_chip from the chips run)."]
    if "chips_for_width_all" in table:
        display[f"chips for CI (all) ≤ {width:g}"] = table["chips_for_width_all"].map(_chips)
        text.append("For the CI of every source, the example (and seed) variance does not shrink with chips: "
                    "n = σ²_chip / ((W / 2z)² − V_examples − V_seeds), and ∞ means that no number of chips gets "
                    "there — more examples (or seeds) are needed.")
    else:
        text.append("Chip-level only (no per-example data): the example sampling error is not included.")
    return [Section("How many chips", text, display)], {"sample_size.csv": table}


# ------------------------------------------------------------------------------------------------- flips
#: unstable examples listed per method (at the last time)
N_FLIP_EXAMPLES = 5


def flip_section(data: PerExample | None, run_dir: Any) -> list[Section]:
    """How many examples change correctness across chips, and the least stable ones (classification only)."""
    if data is None or data.regression:
        return []
    correct = data.correct()  # [method, chip, time, example]
    n_right = correct.sum(1)
    counts = [{"method": m, "t": float(t), "always right": int((n_right[i, k] == data.chips.size).sum()),
               "always wrong": int((n_right[i, k] == 0).sum()),
               "flip across chips": int(((n_right[i, k] > 0) & (n_right[i, k] < data.chips.size)).sum())}
              for i, m in enumerate(data.methods) for k, t in enumerate(data.times)]
    table = pd.DataFrame(counts)
    table["t"] = table["t"].map(stats.format_time)
    last = float(data.times.max())
    worst = []
    for m in data.methods:
        flips = flipping_examples(data, m, last, run_dir).head(N_FLIP_EXAMPLES)
        for r in flips.itertuples():
            text = str(getattr(r, "text", ""))
            worst.append({"method": m, "example": r.example, "label": r.label, "chips right": f"{r.n_correct}/{r.n_chips}",
                          "text": text[:80] + ("…" if len(text) > 80 else "")})
    text = ["Per method and time: examples right on every chip, wrong on every chip, and those whose correctness "
            f"differs across chips; below, the {N_FLIP_EXAMPLES} least stable examples per method at "
            f"t = {stats.format_time(last)} (`examples.flipping_examples(...)` lists them all; `example` indexes "
            "`examples.csv`)."]
    extra = [pd.DataFrame(worst)] if worst else []
    return [Section("Examples that flip across chips", text, table, extra)]


# ---------------------------------------------------------------------------------------------- sequential
def sequential_section(manifest: dict[str, Any]) -> list[Section]:
    """The stopping rule of a sequential run, its looks and outcome (nothing for a fixed run)."""
    seq = manifest.get("sequential")
    if not isinstance(seq, dict):
        return []
    looks = pd.DataFrame(seq.get("looks", []))
    if not looks.empty:
        looks["max_width"] = looks["max_width"].map(_fmt)
        looks = looks.rename(columns={"chips": "chips at look", "max_width": "widest CI"})
    text = [f"**Sequential run**: {seq.get('rule')}. Family: {seq.get('family')} on {seq.get('target_metric')}, "
            f"every time; CI scope: {seq.get('target_scope')}; W = {seq.get('target_ci_width')}; first look "
            f"{seq.get('first_look')} chips, then +{seq.get('chip_batch')} up to {seq.get('max_chips')}.",
            f"Outcome: {seq.get('stopped')} with **{seq.get('chips_used')} chips**.", f"Note: {seq.get('note')}."]
    return [Section("Sequential stopping rule", text, looks if not looks.empty else None)]


def build_sections(df: pd.DataFrame, summary: pd.DataFrame, paired: pd.DataFrame, manifest: dict[str, Any],
                   data: PerExample | None, opts: StatsOptions, run_dir: Any = None
                   ) -> tuple[list[Section], dict[str, pd.DataFrame]]:
    """Every extra section in report order, and the tables to write as CSV."""
    sections, tables = variance_sections(df, summary, paired, data, opts)
    for more, extra in (yield_section(df, opts), sample_size_section(summary, tables, manifest, opts)):
        sections += more
        tables.update(extra)
    return sections + flip_section(data, run_dir) + sequential_section(manifest), tables
