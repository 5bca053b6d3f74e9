"""StochGRASP done properly (issue 19, item 3): sampling forms, σ targets, injection, means vs one sample per chip.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/stochgrasp_study.py train --runs runs/sg     # the adapters
    OMP_NUM_THREADS=1 .venv/bin/python scripts/stochgrasp_study.py mc --runs runs/sg        # the chip Monte Carlo
    .venv/bin/python scripts/stochgrasp_study.py report --runs runs/sg --out docs/stochgrasp_variants

Every adapter is MiniLM-L6 on SST-2 (mean pooling, K = 16 groups per layer), one budget for all (``COMMON``).
The variants differ only in what :class:`~analog_peft.methods.StochGraspConfig` and the training noise say:
``gamma_form`` (Gaussian γ used as a divisor, Gaussian 1/γ, log-normal γ), ``sigma_target`` (a constant, or
derived from the PCM model at 1 day per group: ``weight_spread``), and device-noise injection. ``train`` runs
two trainings at a time (one torch thread each); a run with a ``summary.json`` is kept. ``mc`` scores every
adapter that trained (dev accuracy above ``--min-digital``) on the same chips (paired) under relative Gaussian
noise (a grid of per-layer η) and PCM, full SST-2 dev set; StochGRASP adapters once at their means and once
with one sample of (γ, β) per chip. ``report`` writes the tables and the data (CSV) from the run directories.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fidelity import criteria, yield_col, yield_ratios  # noqa: E402 - scripts/ is on sys.path
from study_jobs import train_all  # noqa: E402 - scripts/ is on sys.path as the script's folder

from analog_peft.montecarlo import stats  # noqa: E402
from analog_peft.montecarlo.stats.hierarchical import hierarchical_paired  # noqa: E402

COMMON = {
    "model": "minilm-l6", "task": "sst2", "rpu": "ideal", "epochs": 2, "batch_size": 16, "eval_batch_size": 64,
    "max_length": 48, "schedule": "linear", "warmup_ratio": 0.06, "lr": 1e-2, "head_lr": 1e-2,
    "train_examples": 6000, "eval_examples": 0, "log_every": 10, "num_threads": 1, "progress": False,
}
K16 = {"k": 16}
PCM_1DAY_WS = {"device_model": "pcm", "t": 86400.0, "mode": "weight_spread"}
INJECT = {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.005}}  # σ = 0.005·max|W| per layer


GAUSS_01_OE = {"device_model": {"name": "gaussian", "eta": 0.01}, "t": 1.0, "mode": "output_error"}


def _sg(form: str, target, sigma_init: float, lam: float = 1e-3, noise: dict | None = None) -> dict:
    fields = {"method": "stochgrasp", "method_options": {**K16, "gamma_form": form, "sigma_target": target,
                                                         "sigma_init": sigma_init, "lam": lam}}
    return {**fields, "noise": noise} if noise else fields


#: run name → (label, TrainConfig fields over COMMON)
RUNS: dict[str, tuple[str, dict]] = {
    "grasp": ("GRASP", {"method": "grasp", "method_options": K16}),
    "grasp_inj": ("GRASP + inj. (Gaussian η=0.005)", {"method": "grasp", "method_options": K16, "noise": INJECT}),
    "sg_gauss_c01": ("StochGRASP γ Gaussian (divisor), σ_t=0.1", _sg("gaussian", 0.1, 0.1)),
    "sg_inv_c01": ("StochGRASP 1/γ Gaussian, σ_t=0.1", _sg("gaussian_inverse", 0.1, 0.1)),
    "sg_logn_c01": ("StochGRASP γ log-normal, σ_t=0.1", _sg("lognormal", 0.1, 0.1)),
    "sg_gauss_ws": ("StochGRASP γ Gaussian (divisor), σ_t: PCM 1 d weight spread", _sg("gaussian", PCM_1DAY_WS, 0.3)),
    "sg_inv_ws": ("StochGRASP 1/γ Gaussian, σ_t: PCM 1 d weight spread", _sg("gaussian_inverse", PCM_1DAY_WS, 0.3)),
    "sg_logn_ws": ("StochGRASP γ log-normal, σ_t: PCM 1 d weight spread", _sg("lognormal", PCM_1DAY_WS, 0.3)),
    "sg_gauss_c01_inj": ("StochGRASP γ Gaussian (divisor), σ_t=0.1 + inj.", _sg("gaussian", 0.1, 0.1, noise=INJECT)),
    "sg_inv_c01_inj": ("StochGRASP 1/γ Gaussian, σ_t=0.1 + inj.", _sg("gaussian_inverse", 0.1, 0.1, noise=INJECT)),
    "sg_logn_c01_inj": ("StochGRASP γ log-normal, σ_t=0.1 + inj.", _sg("lognormal", 0.1, 0.1, noise=INJECT)),
    "sg_logn_oe": ("StochGRASP γ log-normal, σ_t: Gaussian η=0.01 output error",
                   _sg("lognormal", GAUSS_01_OE, 0.1)),
}


def _run_name(name: str, seed: int) -> str:
    return f"{name}_s{seed}"


def cmd_train(args: argparse.Namespace) -> None:
    names = args.only.split(",") if args.only else list(RUNS)
    unknown = sorted(set(names) - set(RUNS))
    if unknown:
        sys.exit(f"unknown run(s) {unknown}; runs: {list(RUNS)}")
    train_all([(str(Path(args.runs) / _run_name(n, s)), {**COMMON, **RUNS[n][1], "seed": s}, args.runs)
               for s in args.seeds for n in names], args.workers)


# -- chip Monte Carlo ---------------------------------------------------------------------------------------
#: relative Gaussian grid (σ = η·max|W| per layer) and its middle; the PCM times and their middle
ETAS = (0.005, 0.01, 0.02)
PCM_TIMES = (86400.0, 365 * 86400.0)
MIDDLE = {"gauss": 0.01, "pcm": 86400.0}
CHIP_SUFFIX = "+chip"


def _summary(runs: Path, name: str, seed: int) -> dict | None:
    path = runs / _run_name(name, seed) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _methods(args: argparse.Namespace) -> list:
    """Every trained adapter above ``--min-digital`` (seed replicates as ``NAME@i``), StochGRASP also sampled."""
    from analog_peft.montecarlo.engine import MethodSpec

    runs, out = Path(args.runs), []
    for name in RUNS:
        dirs = [runs / _run_name(name, s) / "adapter" / "best" for s in args.seeds
                if (_summary(runs, name, s) or {}).get("metric", 0) >= args.min_digital]
        if len(dirs) < len(args.seeds):
            print(f"skip {name}: {len(dirs)} of {len(args.seeds)} seeds trained above {args.min_digital}", flush=True)
            continue
        tags = [f"@{i}" for i in range(len(dirs))] if len(dirs) > 1 else [""]
        sampled = [False] + ([True] if name.startswith("sg_") and name in args.chip_sample.split(",") else [])
        for chip_sample in sampled:
            suffix = CHIP_SUFFIX if chip_sample else ""
            out += [MethodSpec(name + suffix + tag, str(d.resolve()), chip_sample) for tag, d in zip(tags, dirs, strict=True)]
    return out


def studies(args: argparse.Namespace) -> dict:
    """Run directory name → Monte Carlo config; the middle of each grid first."""
    from analog_peft.montecarlo.engine import MonteCarloConfig

    common = {"methods": _methods(args), "task": "sst2", "split": "dev", "n_chips": args.chips, "seed": 0,
              "batch_size": 64, "deployment": "periphery", "max_examples": args.max_examples}
    out = {}
    for eta in sorted(ETAS, key=lambda e: e != MIDDLE["gauss"]):
        out[f"gauss_{eta:g}"] = MonteCarloConfig(**common, rpu="ideal", times=[1.0], run=f"gauss_{eta:g}",
                                                 device_model={"name": "gaussian", "eta": eta})
    out["pcm"] = MonteCarloConfig(**common, rpu="mapped", allow_conversion_override=True, device_model="pcm",
                                  times=[stats.parse_time(t) for t in args.pcm_times.split(",")], run="pcm")
    order = [f"gauss_{MIDDLE['gauss']:g}", "pcm"] + [n for n in out if n not in (f"gauss_{MIDDLE['gauss']:g}", "pcm")]
    return {n: out[n] for n in order}


def cmd_mc(args: argparse.Namespace) -> None:
    from analog_peft.montecarlo.engine import run_montecarlo

    configs = studies(args)
    print("methods:", [m.name for m in next(iter(configs.values())).methods], flush=True)
    for name, config in configs.items():
        if args.only and name not in args.only.split(","):
            continue
        print(f"[{name}]", flush=True)
        run_montecarlo(config, Path(args.runs) / "mc" / name, workers=args.workers, progress=False)


# -- report -------------------------------------------------------------------------------------------------
ARTIFACT_FILES = ("train_config.toml", "summary.json", "log.jsonl", "conversion.json")
#: relative yield thresholds (a chip passes when it keeps r × the best digital accuracy of all methods)
YIELD_RS = (0.95, 0.90)


def export(runs: Path, out: Path, artifacts: Path) -> None:
    """Copy what the report is made from: MC results + manifests to ``out/mc``, the training runs (configs,
    summaries, logs, best adapters) to ``artifacts``."""
    from analog_peft.montecarlo.engine import PUBLISHED_WITH_EXAMPLES, publish

    for run in sorted((runs / "mc").glob("*/manifest.json")):
        publish(run.parent, out / "mc" / run.parent.name, files=PUBLISHED_WITH_EXAMPLES)
    for summary in sorted(runs.glob("*/summary.json")):
        src, dst = summary.parent, artifacts / summary.parent.name
        shutil.rmtree(dst, ignore_errors=True)
        (dst / "adapter").mkdir(parents=True)
        for f in ARTIFACT_FILES:
            if (src / f).is_file():
                shutil.copy2(src / f, dst / f)
        shutil.copytree(src / "adapter" / "best", dst / "adapter" / "best")


def spreads(adapter: Path, form: str) -> dict[str, float]:
    """Mean learned σ_γ, σ_β and σ_target,γ of a StochGRASP adapter, and the expected number of groups per
    forward whose input gain ``1/|γ|`` is at least 10 (Gaussian divisor: ``P(|γ| ≤ 0.1)``; log-normal:
    ``P(γ ≤ 0.1)``; Gaussian 1/γ: ``P(|1 + σε| ≥ 10|μ|)``)."""
    import torch
    from safetensors.torch import load_file
    from scipy.stats import norm

    w = load_file(str(adapter / "adapter.safetensors"))
    layers = sorted(k[: -len(".rho_gamma")] for k in w if k.endswith(".rho_gamma"))
    sg = torch.cat([torch.nn.functional.softplus(w[f"{n}.rho_gamma"].double()) for n in layers]).numpy()
    sb = torch.cat([torch.nn.functional.softplus(w[f"{n}.rho_beta"].double()) for n in layers]).numpy()
    mu = torch.cat([w[f"{n}.gamma"] for n in layers]).double().numpy()
    target = torch.cat([w[f"{n}.sigma_rel"] for n in layers]).double().numpy()
    if form == "gaussian":
        p = norm.cdf((0.1 - mu) / sg) - norm.cdf((-0.1 - mu) / sg)
    elif form == "lognormal":
        p = norm.cdf(np.log(0.1 / np.abs(mu)) / sg)
    else:
        p = norm.sf((10 * np.abs(mu) - 1) / sg) + norm.cdf((-10 * np.abs(mu) - 1) / sg)
    # rounded: the last bits of softplus depend on torch's vector kernels (AVX2 vs AVX-512), the table must not
    return {"sigma_gamma": round(float(sg.mean()), 6), "sigma_beta": round(float(sb.mean()), 6),
            "sigma_target": round(float(target.mean()), 6), "groups": int(mu.size),
            "gain10_per_forward": round(float(p.sum()), 6)}


def _fmt(x: float) -> str:
    return f"{100 * x:.2f}"


def training_table(artifacts: Path, seeds: list[int]) -> tuple[str, pd.DataFrame]:
    rows = []
    for name, (label, fields) in RUNS.items():
        summaries = [json.loads((artifacts / _run_name(name, s) / "summary.json").read_text()) for s in seeds
                     if (artifacts / _run_name(name, s) / "summary.json").is_file()]
        if not summaries:
            continue
        acc = np.array([x["metric"] for x in summaries])
        row = {"run": name, "label": label, "seeds": len(acc), "dev_acc_mean": acc.mean(),
               "dev_acc_std": acc.std(ddof=1) if len(acc) > 1 else np.nan,
               "trainable": summaries[0]["trainable_params"]["trainable"],
               "wall_s": float(np.mean([x["wall_time_s"] for x in summaries]))}
        if fields["method"] == "stochgrasp":
            form = fields["method_options"]["gamma_form"]
            sp = [spreads(artifacts / _run_name(name, s) / "adapter" / "best", form) for s in seeds
                  if (artifacts / _run_name(name, s)).is_dir()]
            row.update({k: float(np.mean([x[k] for x in sp])) for k in sp[0]})
        rows.append(row)
    df = pd.DataFrame(rows)
    lines = ["| adapter | seeds | dev acc. (%) mean ± std | σ_target,γ (mean) | learned σ_γ (mean) | learned σ_β "
             "(mean) | groups with gain ≥ 10 per forward | trainable | wall (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in df.itertuples():
        std = f" ± {100 * r.dev_acc_std:.2f}" if not np.isnan(r.dev_acc_std) else ""
        sg = getattr(r, "sigma_gamma", np.nan)
        cells = ["-"] * 4 if np.isnan(sg) else [f"{r.sigma_target:.3f}", f"{r.sigma_gamma:.3f}",
                                                f"{r.sigma_beta:.3f}", f"{r.gain10_per_forward:.2f}"]
        lines.append(f"| {r.label} | {r.seeds} | {_fmt(r.dev_acc_mean)}{std} | " + " | ".join(cells)
                     + f" | {r.trainable:,} | {r.wall_s:.0f} |")
    return "\n".join(lines) + "\n", df


def _study(data: Path, name: str) -> tuple[pd.DataFrame, int, object]:
    """A study's accuracy rows (replicates collapsed), its dev-set size and its per-example predictions."""
    from analog_peft.montecarlo.examples import load_per_example
    from analog_peft.montecarlo.files import read_results_csv

    df = read_results_csv(data / "mc" / name / "results.csv")
    n = json.loads((data / "mc" / name / "manifest.json").read_text())["eval_set_size"]
    return df[df["metric"] == "accuracy"], n, load_per_example(data / "mc" / name)


def _label(method: str) -> str:
    base, sampled = (method[: -len(CHIP_SUFFIX)], True) if method.endswith(CHIP_SUFFIX) else (method, False)
    return RUNS[base][0] + (" — one sample per chip" if sampled else "")


def _versus(raw: pd.DataFrame, df: pd.DataFrame, per_example, a: str, b: str, n: int) -> pd.DataFrame:
    """``a − b`` on the same chips per time: mean difference (chip CI, Wilcoxon p on counts), the chips ×
    sentences CI of the same difference (one training seed: how far it carries to another dev set) and the
    difference of the 5th-percentile chips with its paired-bootstrap CI."""
    mean = stats.paired(df, a, b, n_examples=n)
    p5 = stats.paired_quantile(df, a, b, q=5)
    both = mean.merge(p5[["t", "q_diff", "ci_low", "ci_high"]].rename(
        columns={"ci_low": "p5_ci_low", "ci_high": "p5_ci_high", "q_diff": "p5_diff"}), on="t")
    hier = hierarchical_paired(raw, per_example, a, b, metric="accuracy", seed=0)
    return both.merge(hier[["t", "ci_low", "ci_high"]].rename(
        columns={"ci_low": "hier_ci_low", "ci_high": "hier_ci_high"}), on="t")


def _diff_cells(p) -> list[str]:
    return [f"{100 * p.mean_diff:+.2f} [{100 * p.ci_low:+.2f}, {100 * p.ci_high:+.2f}], {p.p_holm:.2g}",
            f"[{100 * p.hier_ci_low:+.2f}, {100 * p.hier_ci_high:+.2f}]",
            f"{100 * p.p5_diff:+.2f} [{100 * p.p5_ci_low:+.2f}, {100 * p.p5_ci_high:+.2f}]"]


def _title(name: str, t: float) -> str:
    return f"Gaussian η = {name.split('_')[1]} per layer" if name.startswith("gauss") else f"PCM at {stats.format_time(t)}"


def kl_on_injection(data: Path) -> tuple[str, pd.DataFrame]:
    """What the StochGRASP objective adds on top of device-noise injection: each ``sg_*_inj`` − ``grasp_inj``
    on the same chips (its own Holm family)."""
    rows = []
    for name in sorted(p.parent.name for p in (data / "mc").glob("*/results.csv")):
        raw, n, per_example = _study(data, name)
        df = stats.collapse_replicates(raw)
        for method in (m for m in df["method"].unique() if m.startswith("sg_") and m.endswith("_inj")):
            rows.append(_versus(raw, df, per_example, method, "grasp_inj", n).assign(study=name))
    if not rows:
        return "", pd.DataFrame()
    fam = stats.add_holm(pd.concat(rows, ignore_index=True))
    lines = ["| study | StochGRASP + inj. variant | Δmean vs GRASP + inj. [chip CI], Holm p | Δmean [chips × sentences "
             "CI] | Δp5 [CI] |", "|---|---|---:|---:|---:|"]
    for p in fam.itertuples():
        lines.append(f"| {_title(p.study, p.t)} | {_label(p.a)} | " + " | ".join(_diff_cells(p)) + " |")
    return "\n".join(lines) + "\n", fam


def mc_tables(data: Path) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """Per study and time: each method's chip distribution and yields; every method − GRASP paired (mean, p5)."""
    names = sorted(p.parent.name for p in (data / "mc").glob("*/results.csv"))
    summaries, pairs = [], []
    for name in names:
        raw, n, per_example = _study(data, name)
        df = stats.collapse_replicates(raw)
        summ = stats.summarize(df, by=("method", "t"))
        for r in YIELD_RS:
            y = stats.yield_table(df, relative_threshold=r, reference="best")
            summ = summ.merge(y[["method", "t", "yield_common"]].rename(columns={"yield_common": yield_col(r)}),
                              on=["method", "t"])
        summaries.append(summ.assign(study=name, examples=n))
        for method in summ["method"].unique():
            if method == "grasp":
                continue
            pairs.append(_versus(raw, df, per_example, method, "grasp", n).assign(study=name))
    summ, fam = pd.concat(summaries, ignore_index=True), stats.add_holm(pd.concat(pairs, ignore_index=True))
    out = []
    for (name, t), g in summ.groupby(["study", "t"], sort=False):
        out += [f"\n**{_title(name, t)}** — {int(g['n'].iloc[0])} chips, {int(g['examples'].iloc[0])} SST-2 dev sentences\n",
                "| adapter | digital | chip mean [95% CI] | p5 chip | worst | yield r=0.95 / 0.90 | Δmean vs GRASP "
                "[chip CI], Holm p | Δmean [chips × sentences CI] | Δp5 vs GRASP [CI] |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        f = fam[(fam["study"] == name) & (fam["t"] == t)].set_index("a")
        for r in g.itertuples():
            cells = [_label(r.method), _fmt(r.digital), f"{_fmt(r.mean)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]",
                     _fmt(r.p5), _fmt(r.min), " / ".join(f"{100 * getattr(r, yield_col(y)):.0f}" for y in YIELD_RS) + " %"]
            if r.method in f.index:
                cells += _diff_cells(f.loc[r.method])
            else:
                cells += ["(reference)", "", ""]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n", summ, fam


def verdict(summ: pd.DataFrame, fam: pd.DataFrame) -> str:
    """The issue's fidelity question at the middle of each grid, for the noise-aware variant with the best mean."""
    lines = ["| grid middle | best noise-aware variant | Δmean (≥ +3) | Δp5 (≥ +5) | Holm p (< 0.01) | yield vs GRASP "
             "r=0.95 / 0.90 (≥ 2×) | all met |", "|---|---|---:|---:|---:|---:|---|"]
    for name, t in ((f"gauss_{MIDDLE['gauss']:g}", 1.0), ("pcm", MIDDLE["pcm"])):
        g = summ[(summ["study"] == name) & (summ["t"] == t)].set_index("method")
        f = fam[(fam["study"] == name) & (fam["t"] == t)].set_index("a")
        if g.empty:
            continue
        best = g.drop(index="grasp")["mean"].idxmax()
        p = f.loc[best]
        ratios = yield_ratios([g.loc[best, yield_col(r)] for r in YIELD_RS],
                              [g.loc["grasp", yield_col(r)] for r in YIELD_RS])
        met = criteria(p.mean_diff, p.p5_diff, p.p_holm, ratios)["all_ok"]
        title = f"Gaussian η = {MIDDLE['gauss']:g}" if name.startswith("gauss") else f"PCM {stats.format_time(t)}"
        ys = " / ".join("n/a (both 0)" if np.isnan(x) else f"{x:.2f}×" for x in ratios)
        lines.append(f"| {title} | {_label(best)} | {100 * p.mean_diff:+.2f} | {100 * p.p5_diff:+.2f} | "
                     f"{p.p_holm:.2g} | {ys} | {'yes' if met else 'no'} |")
    return "\n".join(lines) + "\n"


def cmd_report(args: argparse.Namespace) -> None:
    out, artifacts = Path(args.out), Path(args.artifacts)
    if args.runs:
        export(Path(args.runs), out, artifacts)
    train_md, train_df = training_table(artifacts, args.seeds)
    mc_md, summ, fam = mc_tables(out)
    train_df.to_csv(out / "training.csv", index=False)
    summ.to_csv(out / "chips_summary.csv", index=False)
    fam.to_csv(out / "paired_vs_grasp.csv", index=False)
    kl_md, kl = kl_on_injection(out)
    kl.to_csv(out / "paired_vs_grasp_inj.csv", index=False)
    text = (f"## Training ({COMMON['train_examples']:,} SST-2 sentences × {COMMON['epochs']} epochs, full dev set)"
            f"\n\n{train_md}\n## Chips\n{mc_md}\n## What the objective adds on top of injection\n\n{kl_md}\n"
            f"## The fidelity question (middle of each grid)\n\n{verdict(summ, fam)}")
    (out / "tables.md").write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train the variants (resumable)")
    t.add_argument("--runs", default="runs/sg")
    t.add_argument("--only", default="", help="comma-separated subset of " + ",".join(RUNS))
    t.add_argument("--seeds", type=int, nargs="+", default=[0])
    t.add_argument("--workers", type=int, default=2)
    m = sub.add_parser("mc", help="the chip Monte Carlo of every trained adapter (resumable)")
    m.add_argument("--runs", default="runs/sg")
    m.add_argument("--seeds", type=int, nargs="+", default=[0])
    m.add_argument("--chips", type=int, default=50)
    m.add_argument("--min-digital", type=float, default=0.7, help="skip adapters whose dev accuracy is below this")
    m.add_argument("--chip-sample", default="sg_gauss_c01,sg_inv_c01,sg_logn_c01",
                   help="StochGRASP runs also deployed with one sample of (γ, β) per chip")
    m.add_argument("--only", default="", help="comma-separated subset of the studies (gauss_<η>, pcm)")
    m.add_argument("--pcm-times", default=",".join(stats.format_time(t) for t in PCM_TIMES),
                   help="PCM read times (the middle of the grid, 1d, must be one)")
    m.add_argument("--workers", type=int, default=2)
    m.add_argument("--max-examples", type=int, default=None, help="a seeded dev subset (smoke runs only)")
    r = sub.add_parser("report", help="tables and data from the committed data (after exporting --runs)")
    r.add_argument("--runs", default="", help="export this study's runs first (e.g. runs/sg)")
    r.add_argument("--out", default="docs/stochgrasp_variants")
    r.add_argument("--artifacts", default="artifacts/sst2_sg")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args()
    {"train": cmd_train, "mc": cmd_mc, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
