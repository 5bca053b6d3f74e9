"""Decoders on chips with all three adapters (issue 19, item 5): SmolLM2-135M on E2E under PCM — LoRA and GRASP
(the committed study ``docs/montecarlo_e2e/smollm2_adapters_e2e_gen``) next to StochGRASP, run here on the same chips.

A chip is drawn from ``(seed, chip, tile, purpose)`` only (``analog_peft.chips``), never from the adapters in the
periphery, so a second study with the same base, device model, seed, drift compensation, times and eval set programs
the same chips. ``run`` copies the committed study's config and swaps in the StochGRASP adapter; ``report`` checks
those fields in both manifests before it pairs the methods chip by chip (Holm over every paired test).

    OMP_NUM_THREADS=1 .venv/bin/analog-peft train --config scripts/configs/e2e_smollm2_stochgrasp_chips.toml
    OMP_NUM_THREADS=1 .venv/bin/python scripts/decoder_methods.py run --out runs/dec/smollm2_stochgrasp_e2e_gen
    OMP_NUM_THREADS=1 .venv/bin/analog-peft montecarlo --config docs/montecarlo_e2e/smollm2_adapters_e2e_gen/montecarlo_config.toml \
        --set 'methods=[{name="grasp", adapter="artifacts/e2e_smollm2/grasp/adapter"}]' --set n_chips=1 \
        --set 'times=[1.0]' --out runs/dec/check_grasp_chip0
    .venv/bin/python scripts/decoder_methods.py report --runs runs/dec/smollm2_stochgrasp_e2e_gen \
        --check runs/dec/check_grasp_chip0 --out docs/decoder_methods

The third command is the evidence that the code which ran StochGRASP programs the committed study's chips: GRASP
on chip 0 at 1 s, re-run with it, must give the committed values bit for bit (``report`` compares them).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analog_peft.montecarlo import stats  # noqa: E402
from analog_peft.montecarlo.files import read_results_csv  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: the committed LoRA + GRASP study whose chips the StochGRASP study repeats
BASE_STUDY = REPO / "docs/montecarlo_e2e/smollm2_adapters_e2e_gen"
STUDY = "smollm2_stochgrasp_e2e_gen"
#: GRASP re-run on the first chip with the StochGRASP study's code: must equal the committed study's rows
CHECK = "check_grasp_chip0"
#: hashed config fields a second study may change: everything else (base, task and examples, device model, tiles,
#: seed, drift compensation, times, decoding) fixes the chips or the scores and must be equal
MAY_DIFFER = ("methods", "run")
REFERENCE = "grasp"  # every other adapter is compared with deterministic GRASP on the same chips
LABELS = {"lora": "LoRA (r=8, Q,V)", "grasp": "GRASP (K=16)", "stochgrasp": "StochGRASP (K=16, log-normal γ, σ_t=0.1)"}


def cmd_run(args: argparse.Namespace) -> None:
    from analog_peft.montecarlo.engine import MonteCarloConfig, run_montecarlo

    data = tomllib.loads((BASE_STUDY / "montecarlo_config.toml").read_text())
    data.update(methods=[{"name": "stochgrasp", "adapter": str(Path(args.adapter).resolve())}], run=STUDY,
                n_chips=args.chips)
    config = MonteCarloConfig.from_toml_dict(data, source=str(BASE_STUDY / "montecarlo_config.toml"))
    run_montecarlo(config, Path(args.out), workers=args.workers, progress=False)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def chip_fields(manifest: dict) -> dict:
    """What fixes a study's chips and scored examples: its hashed config (less :data:`MAY_DIFFER`), eval set
    digest and chip scheme."""
    from analog_peft.montecarlo.engine import MonteCarloConfig

    config = MonteCarloConfig.from_dict({**manifest["config"], "methods": []}).hashed_fields()
    return {**{k: v for k, v in config.items() if k not in MAY_DIFFER}, "eval_set_sha256": manifest["eval_set_sha256"],
            "chip_scheme": manifest["platform"]["chip_scheme"]}


def check_same_chips(a: dict, b: dict) -> None:
    """Exit with one line naming the first field where two studies' chips or examples differ."""
    fa, fb = chip_fields(a), chip_fields(b)
    for key in sorted(set(fa) | set(fb)):
        if fa.get(key) != fb.get(key):
            sys.exit(f"the studies do not share chips: {key} is {fa.get(key)!r} vs {fb.get(key)!r}; "
                     "rerun `decoder_methods.py run`, which copies the committed study's config")


def same_chip_check(df: pd.DataFrame, folder: Path) -> str:
    """Compare a re-run's rows with the committed study's (exit on any difference); one sentence for the tables."""
    if not (folder / "results.csv").is_file():
        sys.exit(f"no re-run under {folder}: run the check (module docstring), then `report --check DIR`")
    rerun = stats.analog_rows(read_results_csv(folder / "results.csv"))
    keys = ["method", "chip", "t", "metric"]
    both = rerun.merge(stats.analog_rows(df), on=keys, suffixes=("_rerun", ""), how="left")
    if both.empty or both["value"].isna().any() or (both["value"] != both["value_rerun"]).any():
        sys.exit(f"{folder}: the re-run differs from the committed study — this code programs other chips, so the "
                 "studies cannot be paired; rerun every adapter in one study")
    cells = both[["method", "chip", "t"]].drop_duplicates()
    return (f"Re-run with the StochGRASP study's code, {len(cells)} (method, chip, time) cell(s) of the committed "
            f"study ({', '.join(f'{r.method} chip {r.chip} at {stats.format_time(r.t)}' for r in cells.itertuples())}) "
            f"gave all {len(both)} metric values bit-identical.")


def cmd_report(args: argparse.Namespace) -> None:
    from analog_peft.montecarlo.engine import publish

    out = Path(args.out)
    study = out / "mc" / STUDY
    if args.runs:
        publish(args.runs, study)
    if args.check:
        publish(args.check, out / "mc" / CHECK)
    if not (study / "results.csv").is_file():
        sys.exit(f"no StochGRASP study under {study}: run `decoder_methods.py run`, then `report --runs DIR`")
    base, new = _manifest(BASE_STUDY), _manifest(study)
    check_same_chips(base, new)
    df = pd.concat([read_results_csv(BASE_STUDY / "results.csv"), read_results_csv(study / "results.csv")],
                   ignore_index=True)
    chips = {m: set(g["chip"]) for m, g in stats.analog_rows(df).groupby("method")}
    if len({frozenset(c) for c in chips.values()}) != 1:
        sys.exit(f"the studies scored different chips ({ {m: len(c) for m, c in chips.items()} }): "
                 "run the StochGRASP study on as many chips as the committed one")
    check = same_chip_check(df, out / "mc" / CHECK)
    metrics = list(base["metrics"])
    summ = pd.concat([stats.summarize(df, metric=m, by=("method", "t")).assign(metric=m) for m in metrics],
                     ignore_index=True)
    others = [m for m in LABELS if m in chips and m != REFERENCE]
    pairs = stats.add_holm(pd.concat([stats.paired(df, m, REFERENCE, metric=metric).assign(metric=metric)
                                      for metric in metrics for m in others], ignore_index=True))
    n_chips = len(next(iter(chips.values())))
    times = sorted(summ["t"].unique())
    labels = dict(zip(summ["t"], summ["t_label"], strict=False))
    head = "| " + " | ".join(labels[t] for t in times) + " |"
    lines = [f"SmolLM2-135M on E2E, {new['eval_set_size']} seeded test MRs, greedy ≤ {new['max_new_tokens']} new "
             f"tokens; PCM (`{new['rpu']}`, drift compensation {'on' if new['compensate_drift'] else 'off'}), "
             f"the same {n_chips} chips for every adapter (seed {new['seed']}, chip scheme "
             f"`{new['platform']['chip_scheme']}`; every hashed config field but the methods is equal in both "
             f"studies' manifests). {check}", "",
             "Chip mean [95 % bootstrap CI over chips] (worst chip):", "",
             "| adapter | metric | digital " + head, "|---|---|---:" + "|---:" * len(times) + "|"]
    for metric in metrics:
        for m in (m for m in LABELS if m in chips):
            g = summ[(summ["metric"] == metric) & (summ["method"] == m)].set_index("t")
            cells = " | ".join(f"{g.at[t, 'mean']:.3f} [{g.at[t, 'ci_low']:.3f}, {g.at[t, 'ci_high']:.3f}] "
                               f"({g.at[t, 'min']:.3f})" for t in times)
            lines.append(f"| {LABELS[m]} | {metric} | {g['digital'].iloc[0]:.3f} | {cells} |")
    lines += ["", f"Paired difference vs {LABELS[REFERENCE]} on the same chips: mean [95 % CI], Holm-adjusted "
              f"Wilcoxon p over the {len(pairs)} tests of this table, share of chips where the method is higher:", "",
              "| method − GRASP | metric " + head, "|---|---" + "|---:" * len(times) + "|"]
    for metric in metrics:
        for m in others:
            g = pairs[(pairs["metric"] == metric) & (pairs["a"] == m)].set_index("t")
            cells = " | ".join(f"{g.at[t, 'mean_diff']:+.3f} [{g.at[t, 'ci_low']:+.3f}, {g.at[t, 'ci_high']:+.3f}], "
                               f"p {g.at[t, 'p_holm']:.2g}, {g.at[t, 'frac_a_gt_b']:.0%}" for t in times)
            lines.append(f"| {LABELS[m]} | {metric} | {cells} |")
    text = "\n".join(lines) + "\n"
    summ.to_csv(out / "summary.csv", index=False)
    pairs.to_csv(out / "paired.csv", index=False)
    (out / "tables.md").write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--adapter", default="artifacts/e2e_smollm2/stochgrasp/adapter",
                   help="the StochGRASP adapter (the committed one; a fresh training run: RUN/adapter/last)")
    r.add_argument("--out", default=f"runs/dec/{STUDY}")
    r.add_argument("--chips", type=int, default=10)
    r.add_argument("--workers", type=int, default=2)
    rep = sub.add_parser("report")
    rep.add_argument("--runs", default="", help="export this StochGRASP run directory first")
    rep.add_argument("--check", default="", help="export this re-run of a committed cell first")
    rep.add_argument("--out", default="docs/decoder_methods")
    args = p.parse_args()
    {"run": cmd_run, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
