"""Robustness of every method and seed on chips (issue 19, item 2): the adapters of ``methods_study.py`` (every
seed at each method's best rate) deployed on ≥ 50 seeded chips over the device grids, full dev sets, with the
hierarchical statistics (training seeds × chips × sentences).

    .venv/bin/python scripts/robustness_study.py plan --task sst2                   # studies and CPU estimate
    OMP_NUM_THREADS=1 .venv/bin/python scripts/robustness_study.py run --task sst2  # every study, middles first
    .venv/bin/python scripts/robustness_study.py report --export runs/robust --out docs/robustness

Grids (:data:`GRIDS`): relative Gaussian per layer (σ = η · max|W| of the layer, ``ideal`` tiles) from about one
point lost to near chance, the same per output column (σ = η · max|W| of the row: a column-wise remapped
crossbar, smaller σ at the same η), and PCM, HERMES and ReRAM (``mapped`` tiles, global drift compensation) over
their time grids (1 s, 1 d, 1 y; ReRAM at 1 s, 1 d, 2 d, the only times its model is fitted at). Adapters were
trained on the digital (``ideal``) base; deploying them on ``mapped`` tiles is the recorded conversion override.
All methods of one study share the chips (periphery deployment; full fine-tuning programs its own weights with
the same per-tile seeds). Each study is one resumable Monte Carlo run (``runs/robust/<task>/<study>``): a killed
run resumes at its first missing chip. ``report`` reads only the exported results (``--export`` copies results,
manifests and per-example predictions to ``OUT/mc``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from fidelity import BAR, criteria, yield_col, yield_ratios  # scripts/ is the script's folder
from methods_study import BUDGETS, METHODS, SEEDS, best_lr, run_name  # scripts/ is the script's folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analog_peft.montecarlo import stats  # noqa: E402
from analog_peft.montecarlo.stats.hierarchical import hierarchical_paired, hierarchical_summary  # noqa: E402
from device_models.reram import ReRAMWan2022  # noqa: E402
from device_models.units import DAY, YEAR  # noqa: E402

TIMES = (1.0, DAY, YEAR)  # one evaluation each per adapter and chip: the cost grows with every point
#: study name → (device model, tiles, times); the Gaussian grids are per η
GRIDS: dict[str, tuple[dict, str, tuple[float, ...]]] = {
    **{f"gauss_layer_{e:g}": ({"name": "gaussian", "eta": e}, "ideal", (1.0,))
       for e in (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03)},
    **{f"gauss_column_{e:g}": ({"name": "gaussian", "eta": e, "scale": "column_max"}, "ideal", (1.0,))
       for e in (0.01, 0.02, 0.04, 0.08)},
    "pcm": ({"name": "pcm"}, "mapped", TIMES),
    "hermes": ({"name": "hermes"}, "mapped", TIMES),
    "reram": ({"name": "reram"}, "mapped", ReRAMWan2022.fitted_times),  # 1 s, 1 d, 2 d: no drift law
}
#: run first: the middle of each grid, so a partial study already answers the fidelity question
MIDDLES = ("gauss_layer_0.01", "pcm", "gauss_column_0.02", "hermes", "reram")
REFERENCE = "grasp"  # every method is compared with deterministic GRASP on the same chips
#: CPU seconds of one chip × time × adapter evaluation per dev example for ``plan``, programming included
#: (MiniLM-L6, 1 thread, 2 workers on 2 cores; SST-2 measured in session 15 from the chip files' times: PCM 4.8 and
#: per-layer Gaussian 2.0 core-minutes per chip of 9 adapters × 872 sentences × 3 resp. 1 times; pairs ≈ 2×)
SECONDS_PER_EXAMPLE = {"sst2": 0.013, "mrpc": 0.026, "stsb": 0.026, "cola": 0.010}
DEV_SIZES = {"sst2": 872, "mrpc": 408, "stsb": 1500, "cola": 1043}
#: a chip passes when it keeps this share of the best digital score of all methods (one column each)
YIELD_RS = (0.95, 0.90, 0.80)


def _adapters(runs: Path, task: str, methods: list[str]) -> list:
    """One ``MethodSpec`` per trained seed (``METHOD@SEED``); methods without all seeds are skipped, said so."""
    from analog_peft.montecarlo.engine import MethodSpec

    out = []
    for m in methods:
        lr = best_lr(runs, m)
        dirs = [(s, runs / run_name(task, m, lr, s) / "adapter" / "best") for s in SEEDS] if lr is not None else []
        dirs = [(s, d) for s, d in dirs if (d / "adapter_config.json").is_file() or d.is_dir()]
        if len(dirs) < len(SEEDS):
            print(f"skip {task}/{m}: {len(dirs)} of {len(SEEDS)} seeds' adapters under {runs}", flush=True)
            continue
        out += [MethodSpec(f"{m}@{s}", str(d.resolve())) for s, d in dirs]
    return out


def studies(args: argparse.Namespace) -> dict:
    """Study name → Monte Carlo config, middles first."""
    from analog_peft.montecarlo.engine import MonteCarloConfig

    methods = _adapters(Path(args.runs), args.task, _names(args.methods, METHODS, "method"))
    common = {"methods": methods, "task": args.task, "split": "dev", "n_chips": args.chips, "seed": 0,
              "batch_size": 64, "max_length": BUDGETS[args.task]["max_length"], "deployment": "periphery",
              "max_examples": args.max_examples, "allow_conversion_override": True}
    names = _names(args.only, GRIDS, "study")
    names = [n for n in MIDDLES if n in names] + [n for n in names if n not in MIDDLES]
    return {n: MonteCarloConfig(**common, device_model=GRIDS[n][0], rpu=GRIDS[n][1], times=list(GRIDS[n][2]),
                                run=f"{args.task}_{n}") for n in names}


def _names(arg: str, known, what: str) -> list[str]:
    names = [x for x in arg.split(",") if x] if arg else list(known)
    unknown = sorted(set(names) - set(known))
    if unknown:
        sys.exit(f"unknown {what}(s) {unknown}; choose from {', '.join(known)}")
    return names


def cmd_plan(args: argparse.Namespace) -> None:
    configs = studies(args)
    n = args.max_examples or DEV_SIZES[args.task]
    total = 0.0
    for name, c in configs.items():
        evals = len(c.methods) * c.n_chips * len(c.times)
        total += evals * n * SECONDS_PER_EXAMPLE[args.task]
        print(f"{name}: {len(c.methods)} adapters × {c.n_chips} chips × {len(c.times)} times = {evals} evaluations")
    print(f"≈ {total / 3600:.1f} CPU-hours ({n} dev examples each)")


def cmd_run(args: argparse.Namespace) -> None:
    from analog_peft.montecarlo.engine import run_montecarlo

    configs = studies(args)
    if not next(iter(configs.values())).methods:
        sys.exit(f"no adapters with all seeds under {args.runs}: run methods_study.py seeds --task {args.task} first")
    for name, config in configs.items():
        print(f"[{args.task}/{name}] {len(config.methods)} adapters", flush=True)
        run_montecarlo(config, Path(args.out) / args.task / name, workers=args.workers, progress=False)


# -- report -------------------------------------------------------------------------------------------------
def export(src: Path, out: Path) -> None:
    from analog_peft.montecarlo.engine import PUBLISHED_WITH_EXAMPLES, publish

    for manifest in sorted(src.glob("*/*/manifest.json")):
        run = manifest.parent
        done, planned = chips_done(run), json.loads(manifest.read_text())["n_chips"]
        if done < planned:  # a study still running: its partial table is not published
            print(f"skip {run.relative_to(src)}: {done} of {planned} chips (resume it with `run`)")
            continue
        publish(run, out / "mc" / run.relative_to(src), files=PUBLISHED_WITH_EXAMPLES)


def chips_done(run: Path) -> int:
    """Chips of a Monte Carlo run that are written (``chips/chip_*.csv``)."""
    return len(list((run / "chips").glob("chip_*.csv")))


def _load(run: Path):
    from analog_peft.montecarlo.examples import load_per_example
    from analog_peft.montecarlo.files import read_results_csv
    from analog_peft.tasks import get_task

    df = read_results_csv(run / "results.csv")
    manifest = json.loads((run / "manifest.json").read_text())
    metric = get_task(manifest["task"]).metric
    return df[df["metric"] == metric], metric, manifest["eval_set_size"], load_per_example(run)


def study_tables(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per method and time: seeds × chips × sentences mean and CI, chip percentiles, yield; per method − GRASP:
    the same for the paired difference plus the Wilcoxon p of the chip means (seeds averaged per chip)."""
    df, metric, n, per_example = _load(run)
    summary = hierarchical_summary(df, per_example, metric)
    chips = stats.collapse_replicates(df)
    analog = stats.analog_rows(chips)
    extra = analog.groupby(["method", "t"])["value"].quantile(0.05).rename("p5").reset_index()
    for r in YIELD_RS:  # against the best digital score of the study's adapters
        y = stats.yield_table(chips, relative_threshold=r, reference="best")
        extra = extra.merge(y[["method", "t", "yield_common"]].rename(columns={"yield_common": yield_col(r)}),
                            on=["method", "t"])
    digital = stats.digital_reference(df).assign(method=lambda d: d["method"].map(lambda m: stats.replicate_of(m)[0]))
    digital = digital.groupby("method")["digital"].agg(digital="mean", digital_std="std").reset_index()
    summary = summary.merge(extra, on=["method", "t"], how="left").merge(digital, on="method", how="left")
    pairs = []
    for m in (m for m in pd.unique(chips["method"]) if m != REFERENCE):
        chip_p = stats.paired(chips, m, REFERENCE, n_examples=n)
        hier = hierarchical_paired(df, per_example, m, REFERENCE, metric)
        pairs.append(chip_p[["t", "mean_diff", "ci_low", "ci_high", "wilcoxon_p"]].merge(
            hier[["t", "ci_low", "ci_high"]].rename(columns={"ci_low": "hier_low", "ci_high": "hier_high"}), on="t")
            .assign(a=m, b=REFERENCE))
    return summary.assign(study=run.name), (pd.concat(pairs, ignore_index=True).assign(study=run.name)
                                            if pairs else pd.DataFrame())


def _yields(r) -> str:
    return " / ".join(f"{getattr(r, yield_col(y)):.2f}" for y in YIELD_RS)


def fidelity_rows(summary: pd.DataFrame, paired: pd.DataFrame) -> pd.DataFrame:
    """Per study, time and method ≠ GRASP: the four criteria of the fidelity question and whether each holds."""
    rows = []
    ref = summary[summary["method"] == REFERENCE].set_index(["study", "t"])
    for q in paired.itertuples():
        me = summary[(summary["study"] == q.study) & (summary["t"] == q.t) & (summary["method"] == q.a)].iloc[0]
        g = ref.loc[(q.study, q.t)]
        ratios = yield_ratios([me[yield_col(r)] for r in YIELD_RS], [g[yield_col(r)] for r in YIELD_RS])
        d_p5 = me["p5"] - g["p5"]
        rows.append({"study": q.study, "t": q.t, "method": q.a, "mean_diff": q.mean_diff, "p5_diff": d_p5,
                     "p_holm": q.p_holm, **{f"yield_ratio_{round(100 * r)}": x for r, x in zip(YIELD_RS, ratios, strict=True)},
                     **criteria(q.mean_diff, d_p5, q.p_holm, ratios)})
    return pd.DataFrame(rows)


def _ratio(x: float) -> str:
    return "0 vs 0" if x != x else ("> 0 vs 0" if x == float("inf") else f"{x:.2f}×")


def cmd_report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.export:
        export(Path(args.export), out)
    runs = sorted(p.parent for p in (out / "mc").glob("*/*/results.csv"))
    if not runs:
        sys.exit(f"no exported studies under {out / 'mc'}: run `run`, then `report --export runs/robust`")
    summaries, pairs = zip(*(study_tables(r) for r in runs), strict=True)
    summary = pd.concat(summaries, ignore_index=True)
    paired = stats.add_holm(pd.concat([p for p in pairs if not p.empty], ignore_index=True))
    fidelity = fidelity_rows(summary, paired)
    summary.to_csv(out / "summary.csv", index=False)
    paired.to_csv(out / "paired_vs_grasp.csv", index=False)
    fidelity.to_csv(out / "fidelity.csv", index=False)
    thresholds = " / ".join(f"{100 * r:.0f}" for r in YIELD_RS)
    lines = [f"Robustness (issue 19, item 2): means with their seeds × chips × sentences 95 % CI; p5 = the "
             f"5th-percentile chip (seeds averaged per chip); yield = share of chips keeping {thresholds} % of the "
             f"best digital score of the study's adapters; Δ vs GRASP on the same chips with its chip CI, the seeds × "
             f"chips × sentences CI and the Holm-adjusted Wilcoxon p over all {len(paired)} comparisons.", ""]
    for task in sorted({r.parent.name for r in runs}):
        missing = [g for g in GRIDS if not (out / "mc" / task / g / "results.csv").is_file()]
        if missing:
            lines += [f"*{task}: not yet run (or still running):* {', '.join(missing)}.", ""]
    for run in runs:
        s, p = summary[summary["study"] == run.name], paired[paired["study"] == run.name]
        manifest = json.loads((run / "manifest.json").read_text())
        lines += [f"## {run.parent.name} / {run.name}", "",
                  f"{manifest['n_chips']} chips × {manifest['eval_set_size']} dev examples × "
                  f"{len(manifest['methods'])} adapters (every seed of each method).", "",
                  "| method | digital (mean ± std over seeds) | t | chips: mean [CI] | p5 | "
                  f"yield {thresholds} % | Δ vs GRASP [chip CI] | Δ [all-sources CI] | Holm p |",
                  "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for r in s.sort_values(["t", "method"]).itertuples():
            q = p[(p["a"] == r.method) & (p["t"] == r.t)]
            cells = ["", "", ""] if q.empty else [
                f"{100 * q.mean_diff.iloc[0]:+.2f} [{100 * q.ci_low.iloc[0]:+.2f}, {100 * q.ci_high.iloc[0]:+.2f}]",
                f"[{100 * q.hier_low.iloc[0]:+.2f}, {100 * q.hier_high.iloc[0]:+.2f}]", f"{q.p_holm.iloc[0]:.2g}"]
            lines.append(f"| {r.method} | {100 * r.digital:.2f} ± {100 * r.digital_std:.2f} | "
                         f"{stats.format_time(r.t)} | {100 * r.estimate:.2f} [{100 * r.ci_low:.2f}, "
                         f"{100 * r.ci_high:.2f}] | {100 * r.p5:.2f} | {_yields(r)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## The fidelity question", "",
              f"Does a method beat deterministic GRASP by ≥ {100 * BAR['mean']:.0f} points in mean, "
              f"≥ {100 * BAR['p5']:.0f} points at the 5th-percentile chip, with Holm-adjusted p < "
              f"{BAR['p']:g}, and with ≥ {BAR['yield_ratio']:g}× GRASP's yield at one of the thresholds "
              f"({thresholds} %)?", "",
              f"| study | t | method | Δ mean | Δ p5 | Holm p | yield ratio at {thresholds} % | all four |",
              "|---|---|---|---:|---:|---:|---|---|"]
    mark = {True: "yes", False: "no"}
    for r in fidelity.sort_values(["study", "t", "method"]).itertuples():
        ratios = " / ".join(_ratio(getattr(r, f"yield_ratio_{round(100 * y)}")) for y in YIELD_RS)
        lines.append(f"| {r.study} | {stats.format_time(r.t)} | {r.method} | {100 * r.mean_diff:+.2f} "
                     f"({mark[r.mean_ok]}) | {100 * r.p5_diff:+.2f} ({mark[r.p5_ok]}) | {r.p_holm:.2g} "
                     f"({mark[r.p_ok]}) | {ratios} ({mark[r.yield_ok]}) | **{mark[r.all_ok]}** |")
    lines.append("")
    (out / "tables.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, fn in (("plan", cmd_plan), ("run", cmd_run), ("report", cmd_report)):
        s = sub.add_parser(name)
        s.set_defaults(fn=fn)
        if name == "report":
            s.add_argument("--out", default="docs/robustness", help="reads OUT/mc (the committed data)")
            s.add_argument("--export", default="", help="first copy these studies' results to OUT/mc")
            continue
        s.add_argument("--task", default="sst2", choices=list(BUDGETS))
        s.add_argument("--methods", default="", help="comma-separated subset of " + ",".join(METHODS))
        s.add_argument("--only", default="", help="comma-separated subset of the studies: " + ",".join(GRIDS))
        s.add_argument("--chips", type=int, default=50)
        s.add_argument("--max-examples", type=int, default=None, help="a dev subset (smoke tests only)")
        s.add_argument("--runs", default="runs/methods", help="the methods study's runs (adapters)")
        s.add_argument("--out", default="runs/robust")
        s.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
