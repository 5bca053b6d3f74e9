"""Against hardware (issue 19, item 6): the PCM model here next to the published ALBERT-on-PCM-chip figures.

Chen et al., Nat. Commun. 2025 (ALBERT on IBM's HERMES-project PCM chip, GLUE): **1.8 % below the
floating-point accuracy after programming**, **~5 % lost over 30 days without drift compensation** and **< 1 %
with it**. The same three comparisons on our models: SST-2 adapters on MiniLM-L6 with the base on PCM tiles
(``rpu = "mapped"``, adapters in the digital periphery), chips read 1 s, 1 day and 30 days after programming,
once with the chips' global drift compensation (``compensate_drift``) and once without; same chips (seeds) in
both runs, so the compensation effect is a paired difference.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/hardware_comparison.py run --out runs/hw
    .venv/bin/python scripts/hardware_comparison.py report --runs runs/hw --out docs/hardware_comparison
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analog_peft.montecarlo import stats  # noqa: E402
from analog_peft.montecarlo.files import read_results_csv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: display name → committed adapter
ADAPTERS = {
    "GRASP (20k sentences)": "artifacts/sst2_20k/grasp_s0/adapter/best",
    "GRASP + Gaussian injection (6k)": "artifacts/sst2_sg/grasp_inj_s0/adapter/best",
}
TIMES = (1.0, 86400.0, 30 * 86400.0)
RUNS = {"compensated": True, "uncompensated": False}
#: the published figures (loss vs floating point, % of the FP accuracy, GLUE average)
PUBLISHED = {"after programming": ("1.8 %", 1.8), "30 days, no compensation": ("~5 %", 5.0),
             "30 days, compensated": ("< 1 %", 1.0)}


def cmd_run(args: argparse.Namespace) -> None:
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo

    methods = [MethodSpec(name, str(REPO / path)) for name, path in ADAPTERS.items()]
    for run, compensate in RUNS.items():
        config = MonteCarloConfig(methods=methods, task="sst2", split="dev", device_model="pcm", rpu="mapped",
                                  allow_conversion_override=True, n_chips=args.chips, times=list(TIMES), seed=0,
                                  compensate_drift=compensate, run=run, batch_size=64)
        print(f"[{run}]", flush=True)
        run_montecarlo(config, Path(args.out) / run, workers=args.workers, progress=False)


def _rel_loss(digital: float, value: float) -> float:
    """Accuracy lost relative to floating point, in % of the FP accuracy."""
    return 100 * (digital - value) / digital


def cmd_report(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if args.runs:
        from analog_peft.montecarlo.engine import publish

        for run in RUNS:
            publish(Path(args.runs) / run, out / run, files=("results.csv", "manifest.json"))
    frames = {run: read_results_csv(out / run / "results.csv") for run in RUNS}
    frames = {r: df[df["metric"] == "accuracy"] for r, df in frames.items()}
    n_ex = json.loads((out / "compensated" / "manifest.json").read_text())["eval_set_size"]
    lines = ["| adapter | FP (digital) | drift comp. | t | chip mean [95% CI] | loss vs FP (% of FP) [CI] | p5 chip |",
             "|---|---:|---|---|---:|---:|---:|"]
    rows = []
    for run, df in frames.items():
        summ = stats.summarize(df, by=("method", "t"))
        for r in summ.itertuples():
            loss, lo, hi = (_rel_loss(r.digital, v) for v in (r.mean, r.ci_high, r.ci_low))
            rows.append({"adapter": r.method, "compensation": run, "t": r.t, "digital": r.digital, "mean": r.mean,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "p5": r.p5, "loss_pct": loss, "n_chips": r.n})
            lines.append(f"| {r.method} | {100 * r.digital:.2f} | {run} | {r.t_label} | {100 * r.mean:.2f} "
                         f"[{100 * r.ci_low:.2f}, {100 * r.ci_high:.2f}] | {loss:.2f} [{lo:.2f}, {hi:.2f}] | "
                         f"{100 * r.p5:.2f} |")
    table = pd.DataFrame(rows)
    # compensation effect on the same chips: compensated − uncompensated
    both = pd.concat([frames["compensated"], frames["uncompensated"].assign(
        method=frames["uncompensated"]["method"] + " [no comp.]")], ignore_index=True)
    pair_lines = ["| adapter | t | compensated − uncompensated (points) [CI] | Wilcoxon p (counts) |", "|---|---|---:|---:|"]
    for name in ADAPTERS:
        p = stats.paired(both, name, name + " [no comp.]", n_examples=n_ex)
        for r in p.itertuples():
            pair_lines.append(f"| {name} | {r.t_label} | {100 * r.mean_diff:+.2f} [{100 * r.ci_low:+.2f}, "
                              f"{100 * r.ci_high:+.2f}] | {r.wilcoxon_p:.2g} |")
    cmp_lines = ["| comparison | Chen et al. 2025 (ALBERT, PCM chip, GLUE) | this PCM model (SST-2, per adapter) | "
                 "same direction | ours / published |", "|---|---:|---|---|---:|"]
    picks = {"after programming": ("compensated", 1.0), "30 days, no compensation": ("uncompensated", TIMES[-1]),
             "30 days, compensated": ("compensated", TIMES[-1])}
    for label, (run, t) in picks.items():
        sel = table[(table["compensation"] == run) & (table["t"] == t)]
        ours = "; ".join(f"{r.adapter}: {r.loss_pct:.2f} %" for r in sel.itertuples())
        same = all(r.loss_pct > 0 for r in sel.itertuples())
        shown, value = PUBLISHED[label]
        ratio = " / ".join(f"{r.loss_pct / value:.2f}" for r in sel.itertuples())
        cmp_lines.append(f"| {label} | {shown} | {ours} | {'yes' if same else 'no'} | {ratio} |")
    text = (f"{int(table['n_chips'].iloc[0])} PCM chips, {n_ex} SST-2 dev sentences, base on mapped PCM tiles.\n\n"
            + "\n".join(lines) + "\n\nEffect of the drift compensation, same chips:\n\n" + "\n".join(pair_lines)
            + "\n\nNext to the published figures (loss relative to floating point):\n\n" + "\n".join(cmp_lines) + "\n")
    table.to_csv(out / "summary.csv", index=False)
    (out / "tables.md").write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", default="runs/hw")
    r.add_argument("--chips", type=int, default=20)
    r.add_argument("--workers", type=int, default=2)
    rep = sub.add_parser("report")
    rep.add_argument("--runs", default="", help="export these run directories first (e.g. runs/hw)")
    rep.add_argument("--out", default="docs/hardware_comparison")
    args = p.parse_args()
    {"run": cmd_run, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
