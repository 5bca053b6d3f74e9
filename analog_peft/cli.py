"""Command line: ``analog-peft {demo,convert,...}``. Each subcommand is a thin layer over a public verb."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from analog_peft.demo import run_conversion_demo

    run_conversion_demo(args.out, model_name=args.model, device=args.device, n_chips=args.chips, seed=args.seed)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from analog_peft.convert import convert
    from analog_peft.models import load_causal_lm, load_classifier

    model = load_causal_lm(args.model) if args.causal else load_classifier(args.model, num_labels=2)
    modules = args.modules.split(",") if "," in args.modules else args.modules
    report = convert(model, args.rpu, modules=modules)
    print(report.table())
    if args.report:
        report.to_json(args.report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="analog-peft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="end-to-end main job on the real MiniLM-L6 weights")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--device", default="pcm", help="device model name (see `device_models.available()`)")
    p.add_argument("--chips", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("convert", help="convert a model and print the conversion report")
    p.add_argument("model", help="HF name/path or alias (minilm-l6, smollm2-135m)")
    p.add_argument("--rpu", default="standard", choices=["ideal", "standard"])
    p.add_argument("--modules", default="blocks", help="'blocks', 'all', or comma-separated names/patterns")
    p.add_argument("--causal", action="store_true", help="load as a causal LM instead of a classifier")
    p.add_argument("--report", help="write the report as JSON here")
    p.set_defaults(func=_cmd_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
