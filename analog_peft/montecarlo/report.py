"""Chip Monte Carlo report: plots, summary / paired tables and the run manifest as HTML and Markdown.

``write_report(run_dir)`` reads ``results.csv`` + ``manifest.json`` written by the engine and produces, in
``out_dir`` (default ``run_dir/report``): ``report.html`` (self-contained: inline CSS, plots embedded as base64
PNG, no external resources), ``report.md`` with the PNG plots beside it, and ``summary.csv`` / ``paired.csv``
at full precision, plus, where they apply, ``hierarchical.csv`` / ``hierarchical_paired.csv`` (CIs over seeds ×
chips × examples, variance shares), ``yield.csv`` and ``sample_size.csv`` (:mod:`.report_tables`). A run
without per-example scores (made by an older version) gets the chip-level statistics only, and the report says
so. Statistics come from :mod:`analog_peft.montecarlo.stats`. Every file is written atomically (a temporary
file renamed into place), so an interrupted report leaves the previous files intact.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import stats
from .examples import PerExample, load_per_example
from .files import atomic_write, read_results_csv
from .report_decoders import decoder_sections, decoder_statistics_note
from .report_tables import Section, StatsOptions, build_sections, paired_tables

__all__ = [
    "ReportFiles",
    "build_tables",
    "load_run",
    "plot_chip_distributions",
    "plot_metric_vs_time",
    "plot_paired_differences",
    "write_report",
]

RESULTS_FILE = "results.csv"
MANIFEST_FILE = "manifest.json"
CONTEXT_COLUMNS = ("task", "device", "deployment")  # split into separate series when they vary in a run
FORMATS = ("html", "md")
DPI = 110


@dataclass
class ReportFiles:
    """Paths written by :func:`write_report`."""

    out_dir: Path
    html: Path | None = None
    markdown: Path | None = None
    pngs: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)


@dataclass
class _Figure:
    name: str
    caption: str
    png: bytes


# ---------------------------------------------------------------------------------------------------- data
def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read ``results.csv`` and ``manifest.json`` (empty dict if absent) from a run directory."""
    run_dir = Path(run_dir)
    results = run_dir / RESULTS_FILE
    if not results.is_file():
        raise FileNotFoundError(f"No {RESULTS_FILE} in {run_dir}; is this a chip Monte Carlo run directory?")
    df = read_results_csv(results)
    manifest_path = run_dir / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return df, manifest


def series_columns(df: pd.DataFrame) -> list[str]:
    """``method`` plus any of task / device / deployment that take several values among the chip rows."""
    rows = stats.analog_rows(df)
    return ["method", *[c for c in CONTEXT_COLUMNS if c in rows.columns and rows[c].nunique() > 1]]


def _series_keys(frame: pd.DataFrame, series: Sequence[str]) -> list[Any]:
    """Distinct series keys in order of appearance (a scalar for one column, else a tuple)."""
    tuples = dict.fromkeys(frame[list(series)].itertuples(index=False, name=None))
    return [k[0] if len(series) == 1 else k for k in tuples]


def _select(frame: pd.DataFrame, series: Sequence[str], key: Any) -> pd.DataFrame:
    values = key if isinstance(key, tuple) else (key,)
    mask = np.ones(len(frame), dtype=bool)
    for col, val in zip(series, values, strict=True):
        mask &= (frame[col] == val).to_numpy()
    return frame.loc[mask]


def _series_label(key: Any) -> str:
    return " / ".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _method_order(df: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
    """Methods in the order the run lists them (the engine writes ``{"name", "adapter"}`` entries; a method
    with several training seeds appears as ``NAME@0``, ``NAME@1``, ...), then any others in table order."""
    present = list(pd.unique(stats.analog_rows(df)["method"]))
    names = [m.get("name") if isinstance(m, dict) else m for m in manifest.get("methods", [])]
    listed = [p for n in names for p in present if p == n or str(p).startswith(f"{n}@")]
    listed = list(dict.fromkeys(listed))
    return listed + [m for m in present if m not in listed]


def build_tables(
    df: pd.DataFrame,
    manifest: dict[str, Any] | None = None,
    threshold: float | None = None,
    relative_threshold: float | None = None,
    n_boot: int = 9999,
    seed: int = 0,
    data: PerExample | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary (per series, metric, t) and paired-comparison (every method pair, per metric, t; replicates
    averaged per chip; Wilcoxon on counts where possible; Holm over the whole table) tables."""
    manifest = manifest or {}
    cols = series_columns(df)
    methods = _method_order(df, manifest)
    if relative_threshold is not None:
        threshold = None  # the summary's yield column is the relative one; the Yield section shows both
    summary = stats.summarize(df, by=(*cols, "t"), threshold=threshold, relative_threshold=relative_threshold,
                              n_boot=n_boot, seed=seed)
    rank = summary["method"].map({m: i for i, m in enumerate(methods)})
    summary = summary.assign(_rank=rank).sort_values(["metric", "_rank", *cols[1:], "t"], kind="stable")
    summary = summary.drop(columns="_rank").reset_index(drop=True)
    paired = paired_tables(df, manifest, methods, [*cols[1:], "t"], n_boot, seed, data)
    return summary, paired


# --------------------------------------------------------------------------------------------------- plots
def _colors(keys: Sequence[Any]) -> dict[Any, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(keys) <= 10 else "tab20"]
    return {k: cmap(i % cmap.N) for i, k in enumerate(keys)}


def _time_axis(ax: Any, times: np.ndarray, labels: dict[float, str]) -> None:
    if (times > 0).all():
        ax.set_xscale("log")
    else:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xticks(times, [labels.get(t, stats.format_time(t)) for t in times])
    ax.minorticks_off()
    ax.set_xlabel("inference time after programming")


def _time_labels(df: pd.DataFrame) -> dict[float, str]:
    rows = stats.analog_rows(df)
    if "t_label" not in rows.columns:
        return {t: stats.format_time(t) for t in rows["t"].unique()}
    return dict(zip(rows["t"], rows["t_label"].astype(str), strict=True))


def _grid(n: int, max_cols: int, width: float, height: float, sharey: bool = False) -> tuple[Figure, list[Any]]:
    ncols = min(n, max_cols)
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def plot_metric_vs_time(summary: pd.DataFrame, series: Sequence[str] = ("method",)) -> Figure:
    """Mean per series vs time (log x) with p25–p75 and p5–p95 bands and the digital value dashed."""
    series = list(series)
    metrics = list(pd.unique(summary["metric"]))
    keys = _series_keys(summary, series)
    colors = _colors(keys)
    fig, axes = _grid(len(metrics), 2, 7.5, 4.6)
    labels = dict(zip(summary["t"], summary["t_label"].astype(str), strict=True))
    for ax, metric in zip(axes, metrics, strict=True):
        sub = summary[summary["metric"] == metric]
        for key in keys:
            g = _select(sub, series, key).sort_values("t")
            if g.empty:
                continue
            c = colors[key]
            ax.fill_between(g["t"], g["p5"], g["p95"], color=c, alpha=0.12, linewidth=0)
            ax.fill_between(g["t"], g["p25"], g["p75"], color=c, alpha=0.28, linewidth=0)
            ax.plot(g["t"], g["mean"], "o-", color=c, lw=2, ms=4, label=_series_label(key))
            digital = g["digital"].dropna()
            if not digital.empty:
                ax.axhline(digital.iloc[0], color=c, ls="--", lw=1.2, alpha=0.9)
        _time_axis(ax, np.sort(sub["t"].unique()), labels)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} vs time: mean, p25–p75 and p5–p95 of chips; dashed = digital", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    return fig


def plot_chip_distributions(
    df: pd.DataFrame, metric: str, series: Sequence[str] = ("method",), methods: Sequence[str] | None = None
) -> Figure:
    """Per-chip scores: one panel per time, a box + jittered strip per series, digital value dashed.

    Series are ordered (and coloured) by ``methods`` (default: order of appearance), as in the other plots.
    """
    series = list(series)
    rows = stats.analog_rows(df, metric)
    if methods is not None:
        rank = rows["method"].map({m: i for i, m in enumerate(methods)}).fillna(len(methods))
        rows = rows.assign(_rank=rank).sort_values("_rank", kind="stable")
    ref = stats.digital_reference(df[df["metric"] == metric]).groupby("method")["digital"].mean()
    keys = _series_keys(rows, series)
    colors = _colors(keys)
    labels = _time_labels(df)
    times = np.sort(rows["t"].unique())
    fig, axes = _grid(len(times), 3, 4.4, 3.8, sharey=True)
    rng = np.random.default_rng(0)  # jitter only
    for ax, t in zip(axes, times, strict=True):
        at_t = rows[rows["t"] == t]
        data = []
        for i, key in enumerate(keys):
            values = _select(at_t, series, key)["value"].to_numpy(float)
            data.append(values)
            ax.scatter(i + 1 + rng.uniform(-0.18, 0.18, values.size), values, s=9, color=colors[key],
                       alpha=0.7, linewidths=0, zorder=3)
            method = key[0] if isinstance(key, tuple) else key
            if method in ref.index:
                ax.hlines(ref[method], i + 0.6, i + 1.4, colors=colors[key], linestyles="--", lw=1.2)
        ax.boxplot(data, positions=np.arange(1, len(keys) + 1), widths=0.6, showfliers=False,
                   medianprops={"color": "black"}, boxprops={"color": "0.3"}, whiskerprops={"color": "0.3"})
        ax.set_xticks(np.arange(1, len(keys) + 1), [_series_label(k) for k in keys],
                      rotation=30 if len(keys) > 3 else 0, ha="right" if len(keys) > 3 else "center",
                      fontsize=8)
        ax.set_title(f"t = {labels.get(t, stats.format_time(t))}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel(metric)
    fig.suptitle(f"{metric} per chip (box: quartiles, whiskers 1.5 IQR; dashed = digital)", fontsize=10)
    return fig


def plot_paired_differences(paired: pd.DataFrame, metric: str) -> Figure:
    """Mean paired difference a − b vs time with its bootstrap CI, one line per method pair."""
    sub = paired[paired["metric"] == metric]
    extra = [c for c in CONTEXT_COLUMNS if c in sub.columns]
    cols = ["a", "b", *extra]
    groups = [(k, _select(sub, cols, k)) for k in _series_keys(sub, cols)]
    colors = _colors([k for k, _ in groups])
    fig = Figure(figsize=(8.5, 4.6), layout="constrained")
    ax = fig.subplots()
    for key, g in groups:
        g = g.sort_values("t")
        c = colors[key]
        label = f"{key[0]} − {key[1]}" + (f" ({_series_label(key[2:])})" if extra else "")
        ax.fill_between(g["t"], g["ci_low"], g["ci_high"], color=c, alpha=0.2, linewidth=0)
        ax.plot(g["t"], g["mean_diff"], "o-", color=c, lw=2, ms=4, label=label)
    ax.axhline(0.0, color="black", lw=1)
    labels = dict(zip(sub["t"], sub["t_label"].astype(str), strict=True))
    _time_axis(ax, np.sort(sub["t"].unique()), labels)
    ax.set_ylabel(f"Δ {metric} (same chips)")
    ax.set_title(f"paired difference of {metric}: mean over chips with 95% bootstrap CI", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncols=2 if len(groups) > 6 else 1)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def make_figures(df: pd.DataFrame, summary: pd.DataFrame, paired: pd.DataFrame) -> list[_Figure]:
    """All report figures as PNG bytes, in report order (series coloured in the order of ``summary``)."""
    cols = series_columns(df)
    methods = list(pd.unique(summary["method"]))
    figs = [_Figure("metric_vs_time", "Score vs inference time per method (chip percentile bands).",
                    _png(plot_metric_vs_time(summary, cols)))]
    for metric in pd.unique(summary["metric"]):
        figs.append(_Figure(f"chips_{_slug(metric)}", f"Per-chip {metric} at each inference time.",
                            _png(plot_chip_distributions(df, metric, cols, methods))))
    if not paired.empty:
        for metric in pd.unique(paired["metric"]):
            figs.append(_Figure(f"paired_{_slug(metric)}", f"Paired differences of {metric} between methods.",
                                _png(plot_paired_differences(paired, metric))))
    return figs


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(text)).strip("_") or "metric"


# -------------------------------------------------------------------------------------------------- tables
def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, float | np.floating):
        return "–" if np.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def _display_summary(summary: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("metric", "method", *CONTEXT_COLUMNS) if c in summary.columns]
    out = summary[[*keys, "t_label", "n"]].copy()
    out["mean"] = summary["mean"].map(_fmt)
    out["95% CI"] = [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(summary["ci_low"], summary["ci_high"],
                                                                     strict=True)]
    for col in ("std", "p5", "median", "p95", "min"):
        out[col] = summary[col].map(_fmt)
    out["worst chip"] = summary["worst_chip"]
    out["digital"] = summary["digital"].map(_fmt)
    if summary["yield"].notna().any():
        out["threshold"] = summary["threshold"].map(_fmt)
        out["yield"] = summary["yield"].map(lambda y: "–" if np.isnan(y) else f"{100 * y:.0f}%")
    return out.rename(columns={"t_label": "t"})


def _display_paired(paired: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("metric", *CONTEXT_COLUMNS) if c in paired.columns]
    out = paired[[*keys, "a", "b", "t_label", "n_pairs"]].copy()
    out["mean a−b"] = paired["mean_diff"].map(_fmt)
    out["95% CI"] = [f"[{_fmt(lo)}, {_fmt(hi)}]" for lo, hi in zip(paired["ci_low"], paired["ci_high"],
                                                                     strict=True)]
    out["Wilcoxon p"] = paired["wilcoxon_p"].map(lambda p: "–" if np.isnan(p) else f"{p:.3g}")
    if "p_holm" in paired:
        out["p (Holm)"] = paired["p_holm"].map(lambda p: "–" if np.isnan(p) else f"{p:.3g}")
    if "test_on" in paired:
        out["test on"] = paired["test_on"]
    out["chips a>b"] = paired["frac_a_gt_b"].map(lambda f: "–" if np.isnan(f) else f"{100 * f:.0f}%")
    if paired["n_unpaired"].any():
        out["unpaired"] = paired["n_unpaired"]
    return out.rename(columns={"t_label": "t", "n_pairs": "pairs"})


def _manifest_rows(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    keys = ("run", "task", "device", "deployment", "methods", "n_chips", "times", "seed", "threshold",
            "relative_threshold")
    rows = [(k, _json_short(manifest[k])) for k in keys if k in manifest]
    versions = manifest.get("versions") or {}
    if isinstance(versions, dict):
        rows += [(f"version: {k}", str(v)) for k, v in versions.items()]
    return rows


def _json_short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _explanation(n_boot: int, threshold: float | None, relative: float | None) -> list[str]:
    if threshold is not None:
        yield_text = f"**yield** is the fraction of chips scoring ≥ {threshold:g} (absolute threshold)."
    elif relative is not None:
        yield_text = (f"**yield** is the fraction of chips scoring ≥ digital − {1 - relative:.3g} × |digital| "
                      f"(= {relative:g} × the method's own digital score when it is positive; the applied value "
                      "is in the *threshold* column); the Yield section compares it with a common reference.")
    else:
        yield_text = "**yield** is not shown: no threshold was given (`threshold` in the manifest or argument)."
    return [
        "Each **chip** is one seeded draw of programming noise and drift; every method is evaluated on the same "
        "chips, so methods can be compared chip by chip.",
        "**mean / std / percentiles** are over chips at one inference time (std with n − 1; percentiles with "
        "linear interpolation). The bands in the time plot are p25–p75 (dark) and p5–p95 (light); the dashed "
        "line is the noise-free digital score.",
        f"**95% CI** is a percentile bootstrap of the mean over chips ({n_boot} resamples, fixed seed): the "
        "range of plausible *average* chip scores, not the spread of single chips (that is p5–p95).",
        yield_text,
        "**worst chip** is the chip id with the lowest score (re-run that seed to inspect it).",
        "**Paired comparison** a − b uses only chips scored under both methods: mean difference with a "
        "bootstrap CI, the two-sided Wilcoxon signed-rank p-value (zero differences dropped; p = 1 when all "
        "differences are zero) and the share of chips on which a beats b. A CI excluding 0 and a small p mean "
        "the difference is consistent across chips; with many times and pairs, expect some small p by chance: "
        "**p (Holm)** adjusts every p-value of the table for the whole family. *test on* = counts: the test ran "
        "on the integer numbers of correct examples (accuracy), so exact ties stay ties.",
    ]


# ----------------------------------------------------------------------------------------------- rendering
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1200px;padding:0 16px;color:#1d2330;line-height:1.45}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #dde;
padding-bottom:.2em}.meta{color:#556;font-size:.92em}figure{margin:12px 0}figure img{max-width:100%;
border:1px solid #e3e6ee}figcaption{color:#556;font-size:.9em}table{border-collapse:collapse;font-size:.85em;
margin:8px 0}th,td{border:1px solid #dde;padding:3px 8px;text-align:right}th{background:#f2f4f8}
td:first-child,th:first-child{text-align:left}tr:nth-child(even) td{background:#fafbfd}
pre{background:#f6f7f9;padding:10px;overflow:auto;font-size:.82em}.wrap{overflow-x:auto}
"""


def _md_inline_to_html(text: str) -> str:
    parts = html.escape(text).split("**")
    out = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    parts = out.split("*")
    return "".join(f"<i>{p}</i>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(df: pd.DataFrame) -> str:
    return '<div class="wrap">' + df.to_html(index=False, border=0, escape=True, na_rep="–") + "</div>"


def _md_table(df: pd.DataFrame) -> str:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def _title(manifest: dict[str, Any], df: pd.DataFrame) -> tuple[str, str]:
    rows = stats.analog_rows(df)

    def pick(key: str) -> str:
        if key in manifest:
            return _json_short(manifest[key])
        return ", ".join(map(str, pd.unique(rows[key]))) if key in rows.columns else "?"

    data = manifest.get("data")
    name = data["name"] if isinstance(data, dict) and data.get("name") else pick("task")
    title = f"Chip Monte Carlo: {name} on {pick('device')} ({pick('deployment')})"
    n_chips = rows["chip"].nunique()
    meta = (f"{n_chips} chips × {rows['t'].nunique()} inference times × {rows['method'].nunique()} methods; "
            f"metrics: {', '.join(map(str, pd.unique(rows['metric'])))}")
    return title, meta


def render_html(
    title: str, meta: str, figures: Sequence[_Figure], summary: pd.DataFrame, paired: pd.DataFrame,
    manifest: dict[str, Any], explanation: Iterable[str], sections: Sequence[Section] = (),
) -> str:
    """Self-contained HTML page (inline CSS, base64 images, no scripts, no external resources)."""
    esc = html.escape

    def fig_html(f: _Figure) -> str:
        data = base64.b64encode(f.png).decode("ascii")
        return (f'<figure><img alt="{esc(f.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(f.caption)}</figcaption></figure>")

    time_figs = [f for f in figures if f.name == "metric_vs_time"]
    chip_figs = [f for f in figures if f.name.startswith("chips_")]
    pair_figs = [f for f in figures if f.name.startswith("paired_")]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>", f'<p class="meta">{esc(meta)}</p>',
        *map(fig_html, time_figs),
        "<h2>Summary per method and inference time</h2>", _html_table(_display_summary(summary)),
        "<h2>Per-chip distributions</h2>", *map(fig_html, chip_figs),
    ]
    if not paired.empty:
        parts += ["<h2>Paired comparisons (same chips)</h2>", *map(fig_html, pair_figs),
                  f"<p>{_md_inline_to_html(stats.family_text(paired))}</p>", _html_table(_display_paired(paired))]
    for sec in sections:
        parts += [f"<h2>{esc(sec.title)}</h2>", *(f"<p>{_md_inline_to_html(x)}</p>" for x in sec.paragraphs)]
        parts += [_html_table(t) for t in ([sec.table] if sec.table is not None else []) + sec.extra_tables]
    parts += ["<h2>How to read this</h2><ul>", *(f"<li>{_md_inline_to_html(x)}</li>" for x in explanation),
              "</ul>", "<h2>Run configuration</h2>"]
    rows = _manifest_rows(manifest)
    if rows:
        parts.append(_html_table(pd.DataFrame(rows, columns=["field", "value"])))
    parts += ["<details><summary>full manifest.json</summary><pre>",
              esc(json.dumps(manifest, indent=2, default=str)), "</pre></details>", "</body></html>"]
    return "\n".join(parts)


def render_markdown(
    title: str, meta: str, figures: Sequence[_Figure], png_names: dict[str, str], summary: pd.DataFrame,
    paired: pd.DataFrame, manifest: dict[str, Any], explanation: Iterable[str], sections: Sequence[Section] = (),
) -> str:
    """Markdown page referencing the PNG files (relative paths) written beside it."""

    def fig_md(f: _Figure) -> str:
        return f"![{f.caption}]({png_names[f.name]})\n\n*{f.caption}*\n"

    time_figs = [f for f in figures if f.name == "metric_vs_time"]
    chip_figs = [f for f in figures if f.name.startswith("chips_")]
    pair_figs = [f for f in figures if f.name.startswith("paired_")]
    parts = [f"# {title}", "", meta, "", *map(fig_md, time_figs),
             "## Summary per method and inference time", "", _md_table(_display_summary(summary)), "",
             "## Per-chip distributions", "", *map(fig_md, chip_figs)]
    if not paired.empty:
        parts += ["## Paired comparisons (same chips)", "", *map(fig_md, pair_figs), stats.family_text(paired), "",
                  _md_table(_display_paired(paired)), ""]
    for sec in sections:
        parts += [f"## {sec.title}", ""]
        for x in sec.paragraphs:
            parts += [x, ""]
        parts += [p for t in ([sec.table] if sec.table is not None else []) + sec.extra_tables
                  for p in (_md_table(t), "")]
    parts += ["## How to read this", "", *(f"- {x}" for x in explanation), "", "## Run configuration", ""]
    rows = _manifest_rows(manifest)
    if rows:
        parts += [_md_table(pd.DataFrame(rows, columns=["field", "value"])), ""]
    parts += ["<details><summary>full manifest.json</summary>", "", "```json",
              json.dumps(manifest, indent=2, default=str), "```", "", "</details>", ""]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------ entry
def write_report(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    formats: Sequence[str] = FORMATS,
    threshold: float | None = None,
    relative_threshold: float | None = None,
    n_boot: int = 9999,
    seed: int = 0,
    reference: str = "best",
    target_ci_width: float | None = None,
    n_boot_hier: int = 2000,
    figures: bool = True,
) -> ReportFiles:
    """Write the report of a run directory; returns the paths written.

    ``threshold`` / ``relative_threshold`` (see :func:`stats.summarize`) default to the manifest's
    ``threshold`` / ``relative_threshold``; ``reference`` is the common yield reference ("best" or a method,
    :func:`stats.yield_table`); ``target_ci_width`` the width of the sample-size table (default: the run's
    sequential target, else 0.01). ``n_boot`` resamples the chip-level CIs, ``n_boot_hier`` the hierarchical
    ones. ``seed`` seeds the bootstrap only (not the chips). ``figures=False``: tables only (no PNG).
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"Unknown report formats {sorted(unknown)}; choose from {FORMATS}.")
    df, manifest = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    data = _matching_examples(run_dir, df)
    summary, paired = build_tables(df, manifest, threshold, relative_threshold, n_boot=n_boot, seed=seed, data=data)
    opts = StatsOptions(threshold, relative_threshold, reference, target_ci_width, n_boot_hier, seed)
    sections, extra = build_sections(df, summary, paired, manifest, data, opts, run_dir)
    sections = decoder_sections(run_dir, df, manifest) + decoder_statistics_note(run_dir, sections)
    figures = make_figures(df, summary, paired) if figures else []
    files = ReportFiles(out_dir=out)

    png_names = {f.name: f"{f.name}.png" for f in figures}
    for f in figures:
        path = out / png_names[f.name]
        atomic_write(path, f.png)
        files.pngs.append(path)
    for name, table in (("summary.csv", summary), ("paired.csv", paired), *extra.items()):
        atomic_write(out / name, table.to_csv(index=False))
        files.tables.append(out / name)

    title, meta = _title(manifest, df)
    explanation = _explanation(n_boot, threshold, relative_threshold)
    if "html" in formats:
        files.html = out / "report.html"
        atomic_write(files.html, render_html(title, meta, figures, summary, paired, manifest, explanation,
                                             sections))
    if "md" in formats:
        files.markdown = out / "report.md"
        atomic_write(files.markdown,
                     render_markdown(title, meta, figures, png_names, summary, paired, manifest, explanation,
                                     sections))
    return files


def _matching_examples(run_dir: str | Path, df: pd.DataFrame) -> PerExample | None:
    """The run's per-example data when it covers exactly the chips of ``results.csv`` (else None)."""
    data = load_per_example(run_dir)
    if data is None or set(data.chips.tolist()) != set(stats.analog_rows(df)["chip"]):
        return None
    return data
