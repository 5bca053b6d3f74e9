"""Where the noise hurts (issue 19, item 4): device noise on one role / block / layer at a time, and the accuracy
recovered by keeping the k most sensitive layers digital.

Every study is a chip Monte Carlo run (``analog_peft.montecarlo``) of one deployed adapter with a noise scope
(``MonteCarloConfig.noisy_layers`` / ``digital_layers``). Chip k draws the same device values for a layer in every
run (seeds are per tile), so all scopes are compared on the same chips (paired).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/layer_sensitivity.py run --adapter DIR --out runs/sens/study
    .venv/bin/python scripts/layer_sensitivity.py report --runs runs/sens/study --out docs/layer_sensitivity

``run`` is resumable (each run directory resumes chip by chip; finished runs are skipped) and runs two Monte
Carlo runs at a time, one torch thread each. Phases: (1) the full chip, each role and each block alone at
``--times``; (2) each analog layer alone at ``--rank-time`` on ``--rank-chips`` chips, which ranks the layers by
their mean accuracy loss; (3) the k most sensitive layers kept digital, and k random layers as the control.
``report`` writes the tables (Markdown), the data (CSV) and the plots from the run directories.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analog_peft.architectures import SPECS, ArchSpec  # noqa: E402
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo  # noqa: E402
from analog_peft.montecarlo.files import read_results_csv  # noqa: E402
from analog_peft.montecarlo.stats import add_holm, format_time, paired, summarize  # noqa: E402

METHOD = "grasp"
KS = (1, 2, 4, 8, 12, 18)
RANDOM_KS = (2, 4, 8)


@dataclass
class Scope:
    """One Monte Carlo run: a name, its noise scope, chips and times."""

    name: str
    noisy: list[str] = field(default_factory=list)
    digital: list[str] = field(default_factory=list)
    chips: int = 10
    times: list[float] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.name.replace(":", "_").replace("/", "_")


def _config(args: argparse.Namespace, scope: Scope) -> MonteCarloConfig:
    return MonteCarloConfig(
        methods=[MethodSpec(METHOD, str(Path(args.adapter).resolve()))], base_model=args.base, task="sst2",
        split="dev", device_model=args.device_model, rpu="mapped", n_chips=scope.chips, times=scope.times,
        seed=args.seed, run=scope.name, noisy_layers=scope.noisy, digital_layers=scope.digital,
        batch_size=64, data_dir=args.data_dir, max_examples=args.max_examples, allow_conversion_override=True,
    )


def _run_one(job: tuple[argparse.Namespace, Scope]) -> str:
    import torch

    torch.set_num_threads(1)
    args, scope = job
    run_montecarlo(_config(args, scope), Path(args.out) / scope.slug, workers=1, progress=False)
    return scope.name


def _run_all(args: argparse.Namespace, scopes: list[Scope]) -> None:
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name in pool.map(_run_one, [(args, s) for s in scopes]):
            print(f"done: {name}", flush=True)


def _layout(layers: list[str]) -> tuple[ArchSpec, list[str], list[int]]:
    """The model family's layout (``architectures.SPECS``), its roles and block numbers among ``layers``."""
    spec = next(s for s in SPECS.values() if any(s.role_of(name) for name in layers))
    roles = [r for r in spec.roles if any(spec.role_of(name) == r for name in layers)]
    blocks = sorted({spec.locate(name)[0] for name in layers if spec.locate(name)})
    return spec, roles, blocks


def _layers(args: argparse.Namespace) -> list[str]:
    """The analog layers of the deployed model (conversion-time names), in model order."""
    from analog_peft.convert import analog_tiles
    from analog_peft.deploy import deploy

    dep = deploy(args.base, str(Path(args.adapter).resolve()), "periphery", "mapped", 2, name=METHOD)
    return list(dict.fromkeys(name for name, _ in analog_tiles(dep.model)))


def _ranking(out: Path, layers: list[str], t: float) -> list[str]:
    """Layers ordered by the mean accuracy loss (digital − chip) when each is the only noisy one."""
    loss = {}
    for layer in layers:
        df = read_results_csv(out / Scope(f"layer:{layer}").slug / "results.csv")
        acc = df[df.metric == "accuracy"]
        digital = acc[acc.chip < 0].value.mean()
        loss[layer] = digital - acc[(acc.chip >= 0) & np.isclose(acc.t, t)].value.mean()
    return sorted(layers, key=lambda name: -loss[name])


def cmd_run(args: argparse.Namespace) -> None:
    times = [float(t) for t in args.times.split(",")]
    layers = _layers(args)
    _, roles, blocks = _layout(layers)
    first = [Scope("all", times=times, chips=args.chips)]
    first += [Scope(f"role:{r}", noisy=[f"role:{r}"], times=times, chips=args.chips) for r in roles]
    first += [Scope(f"block:{i}", noisy=[f"block:{i}"], times=times, chips=args.chips) for i in blocks]
    rank = [Scope(f"layer:{name}", noisy=[name], times=[args.rank_time], chips=args.rank_chips) for name in layers]
    _run_all(args, first + rank)
    order = _ranking(Path(args.out), layers, args.rank_time)
    (Path(args.out) / "ranking.json").write_text(json.dumps(order, indent=1))
    rng = random.Random(args.seed)
    keep = [Scope(f"top{k}_digital", digital=order[:k], times=[args.rank_time], chips=args.chips) for k in KS]
    keep += [Scope(f"random{k}_digital", digital=rng.sample(layers, k), times=[args.rank_time], chips=args.chips)
             for k in RANDOM_KS]
    keep.append(Scope("all_rank_t", times=[args.rank_time], chips=args.chips))  # k = 0 on the same chips
    _run_all(args, keep)


# -- report ------------------------------------------------------------------------------------------------


def _table(runs: Path) -> pd.DataFrame:
    """Every run's rows, ``method`` replaced by the run (scope) name."""
    frames = []
    for results in sorted(runs.glob("*/results.csv")):
        df = read_results_csv(results)
        df["method"] = df["run"]
        frames.append(df)
    if not frames:
        raise SystemExit(f"no run directories with results.csv under {runs}: run `layer_sensitivity.py run` first")
    df = pd.concat(frames, ignore_index=True)
    return df[df.metric == "accuracy"]


def _scope_rows(df: pd.DataFrame, names: list[str], ref: str) -> pd.DataFrame:
    """Per scope and time: mean accuracy with its 95 % CI over chips, the 5th-percentile chip, the loss
    against the digital model and its share of the full chip's loss (same chips)."""
    s = summarize(df[df.method.isin(names)], metric="accuracy", by=("method", "t"))
    full = s[s.method == ref].set_index("t")
    loss = s.digital - s["mean"]
    full_loss = (full.digital - full["mean"]).reindex(s.t).to_numpy()
    return pd.DataFrame({"scope": s.method, "t": s.t, "t_label": s.t_label, "chips": s.n, "digital": s.digital,
                         "mean": s["mean"], "ci_low": s.ci_low, "ci_high": s.ci_high, "p5": s.p5, "loss": loss,
                         "share_of_full_loss": loss.to_numpy() / full_loss})


def _keep_rows(df: pd.DataFrame, names: list[str], ref: str, n_examples: int) -> pd.DataFrame:
    """Paired gain of each keep-k-digital scope over the full chip (same chips), Holm-adjusted over the table."""
    out = []
    for name in names:
        p = paired(df, name, ref, metric="accuracy", by="t", n_examples=n_examples)
        p.insert(0, "scope", name)
        out.append(p)
    t = add_holm(pd.concat(out, ignore_index=True))
    kind = t.scope.str.extract(r"^(top|random)(\d+)_digital$")
    return pd.DataFrame({"scope": t.scope, "kind": kind[0], "k": kind[1].astype(int), "t": t.t, "t_label": t.t_label,
                         "chips": t.n_pairs, "mean": t.mean_a, "full_chip": t.mean_b, "gain": t.mean_diff,
                         "ci_low": t.ci_low, "ci_high": t.ci_high, "wilcoxon_p": t.wilcoxon_p, "p_holm": t.p_holm})


def _markdown(scopes: pd.DataFrame, keep: pd.DataFrame, grid: pd.DataFrame, keep_held: pd.DataFrame,
              versus: pd.DataFrame) -> str:
    """The tables as Markdown (accuracy in %, losses and gains in points)."""
    def pct(x: float) -> str:
        return f"{100 * x:.2f}"

    def table(columns: list[str], rows: list[list[str]]) -> str:
        return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
                          *["| " + " | ".join(r) + " |" for r in rows]])

    first = table(["noisy layers", "t", "chips", "digital", "mean [95% CI]", "p5 chip", "loss (points)",
                   "share of the full chip's loss"],
                  [[r.scope, r.t_label, str(r.chips), pct(r.digital), f"{pct(r.mean)} [{pct(r.ci_low)}, {pct(r.ci_high)}]",
                    pct(r.p5), f"{100 * r.loss:.2f}", "–" if r.scope == "all" else f"{r.share_of_full_loss:.2f}"]
                   for r in scopes.itertuples()])
    def keep_table(k: pd.DataFrame) -> str:
        return table(["layers kept digital", "t", "chips", "mean", "gain over the full chip [95% CI]",
                      "Wilcoxon p (Holm)"],
                     [[f"{r.k} {'most sensitive' if r.kind == 'top' else 'random'}", r.t_label, str(r.chips),
                       pct(r.mean), f"{100 * r.gain:+.2f} [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]",
                       f"{r.wilcoxon_p:.2g} ({r.p_holm:.2g})"] for r in k.itertuples()])

    second = keep_table(keep)
    held = keep_table(keep_held)
    vs = table(["k", "t", "chips", "k most sensitive", "k random", "difference [95% CI]", "Wilcoxon p (Holm)"],
               [[r.a.removeprefix("top").removesuffix("_digital"), r.t_label, str(r.n_pairs), pct(r.mean_a),
                 pct(r.mean_b), f"{100 * r.mean_diff:+.2f} [{100 * r.ci_low:+.2f}, {100 * r.ci_high:+.2f}]",
                 f"{r.wilcoxon_p:.2g} ({r.p_holm:.2g})"] for r in versus.itertuples()])
    third = table(["block", *grid.columns], [[str(b), *[f"{v:.2f}" for v in row]] for b, row in grid.iterrows()])
    return "\n\n".join([first, second, held, vs, third]) + "\n"


def _layer_grid(df: pd.DataFrame, layers: list[str], t: float) -> pd.DataFrame:
    """Mean accuracy loss (points) with one layer noisy, as a blocks × roles grid."""
    spec, roles, blocks = _layout(layers)
    grid = pd.DataFrame(index=blocks, columns=roles, dtype=float)
    for layer in layers:
        rows = df[df.method == f"layer:{layer}"]
        digital = rows[rows.chip < 0].value.mean()
        block, _ = spec.locate(layer)
        grid.loc[block, spec.role_of(layer)] = 100 * (digital - rows[(rows.chip >= 0) & np.isclose(rows.t, t)].value.mean())
    grid.index.name = "block"
    return grid


def _plots(out: Path, grid: pd.DataFrame, df: pd.DataFrame, t: float, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    im = ax.imshow(grid.to_numpy(float), cmap="Reds")
    ax.set_xticks(range(len(grid.columns)), grid.columns)
    ax.set_yticks(range(len(grid.index)), [f"block {i}" for i in grid.index])
    for (i, j), v in np.ndenumerate(grid.to_numpy(float)):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax, label="accuracy loss (points), this layer alone noisy")
    ax.set_title(f"{device} at {format_time(t)}: one layer noisy at a time")
    fig.tight_layout()
    fig.savefig(out / "layer_loss_grid.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for prefix, ks, label in (("top", (0, *KS), "k most sensitive layers digital"),
                              ("random", (0, *RANDOM_KS), "k random layers digital")):
        names = ["all_rank_t" if k == 0 else f"{prefix}{k}_digital" for k in ks]
        s = summarize(df[df.method.isin(names)], metric="accuracy", by=("method", "t")).set_index("method")
        means = [100 * s.loc[n, "mean"] for n in names]
        err = [[100 * (s.loc[n, "mean"] - s.loc[n, "ci_low"]) for n in names],
               [100 * (s.loc[n, "ci_high"] - s.loc[n, "mean"]) for n in names]]
        ax.errorbar(ks, means, yerr=err, marker="o", capsize=3, label=label)
    ax.axhline(100 * s["digital"].iloc[0], color="grey", ls="--", label="digital")
    ax.set_xlabel("layers kept digital (of 36)")
    ax.set_ylabel("SST-2 dev accuracy (%), mean over chips [95% CI]")
    ax.set_title(f"{device} at {format_time(t)}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "keep_digital.png", dpi=120)
    plt.close(fig)


def cmd_report(args: argparse.Namespace) -> None:
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df = _table(runs)
    order = json.loads((runs / "ranking.json").read_text())
    _, roles, blocks = _layout(order)
    first = ["all", *[f"role:{r}" for r in roles], *[f"block:{i}" for i in blocks]]
    scopes = _scope_rows(df, first, "all")
    n_examples = json.loads((runs / "all" / "manifest.json").read_text())["eval_set_size"]
    names = [*[f"top{k}_digital" for k in KS], *[f"random{k}_digital" for k in RANDOM_KS]]
    keep = _keep_rows(df, names, "all_rank_t", n_examples)
    # the ranking was measured on chips 0 … rank_chips-1: the chips after them are held out of the selection
    held = df[(df.chip < 0) | (df.chip >= args.rank_chips)]
    keep_held = _keep_rows(held, names, "all_rank_t", n_examples)
    versus = pd.concat([paired(held, f"top{k}_digital", f"random{k}_digital", metric="accuracy", by="t",
                               n_examples=n_examples) for k in RANDOM_KS], ignore_index=True)
    versus = add_holm(versus)
    grid = _layer_grid(df, order, args.rank_time)
    scopes.to_csv(out / "scopes.csv", index=False)
    keep.to_csv(out / "keep_digital.csv", index=False)
    keep_held.to_csv(out / "keep_digital_held_out.csv", index=False)
    versus.to_csv(out / "top_vs_random_held_out.csv", index=False)
    grid.to_csv(out / "layer_loss_grid.csv")
    (out / "ranking.json").write_text(json.dumps(order, indent=1))
    manifest = json.loads((runs / "all" / "manifest.json").read_text())
    _plots(out, grid, df, args.rank_time, manifest["device_model"]["name"].upper())
    (out / "tables.md").write_text(_markdown(scopes, keep, grid, keep_held, versus))
    if args.copy_runs:  # the committed data: each run's table, manifest and config (check_published_mc re-runs them)
        for run in sorted(p for p in runs.iterdir() if (p / "results.csv").is_file()):
            dest = out / "runs" / run.name
            dest.mkdir(parents=True, exist_ok=True)
            for f in ("results.csv", "manifest.json", "montecarlo_config.toml"):
                shutil.copy2(run / f, dest / f)
        shutil.copy2(runs / "ranking.json", out / "runs" / "ranking.json")  # report --runs <out>/runs reruns it
    print(f"wrote {out}/tables.md, scopes.csv, keep_digital.csv, layer_loss_grid.csv, two plots")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(required=True)
    run = sub.add_parser("run")
    run.add_argument("--adapter", required=True, help="the adapter folder (e.g. a run's adapter/best)")
    run.add_argument("--base", default="minilm-l6")
    run.add_argument("--device-model", default="pcm")
    run.add_argument("--times", default="86400,31536000")
    run.add_argument("--chips", type=int, default=10)
    run.add_argument("--rank-time", type=float, default=31536000.0)
    run.add_argument("--rank-chips", type=int, default=5)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--data-dir", default=None)
    run.add_argument("--max-examples", type=int, default=None, help="a dev subset (smoke tests; default: all 872)")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--out", required=True)
    run.set_defaults(func=cmd_run)
    rep = sub.add_parser("report")
    rep.add_argument("--runs", required=True)
    rep.add_argument("--out", required=True)
    rep.add_argument("--rank-time", type=float, default=31536000.0)
    rep.add_argument("--rank-chips", type=int, default=5, help="chips the ranking was measured on (held out after)")
    rep.add_argument("--copy-runs", action="store_true", help="copy each run's table, manifest and config to --out")
    rep.set_defaults(func=cmd_report)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
