"""Command line: ``analog-peft {demo,convert,...}``. Each subcommand is a thin layer over a public verb.

Invalid input (a bad option value, a missing file, a config the package refuses) ends with one line
``analog-peft: error: ...`` on stderr and exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from analog_peft.logs import get_logger

if TYPE_CHECKING:
    from analog_peft.montecarlo.engine import MonteCarloConfig

_log = get_logger("cli")
PROG = "analog-peft"
#: Exit status of every usage / validation error (as argparse's own).
USAGE_ERROR = 2
#: Package exceptions outside ``ValueError`` that are user errors: ``(module, class name)``.
_USER_ERRORS = (("analog_peft.montecarlo.engine", "RunDirMismatch"), ("analog_peft.montecarlo.files", "RunDirLocked"),
                ("analog_peft.montecarlo.ray_executor", "RayMissing"))


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line ``analog-peft: error: ...`` (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


def positive_int(text: str) -> int:
    """An ``int >= 1`` option value (``--workers 0`` / ``-3`` are refused by argparse)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is invalid input (reported in one line) rather than a bug (shown with its traceback)."""
    if isinstance(exc, ValueError | FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return True
    for module, name in _USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _close_progress_bars() -> None:
    """Finish the tqdm bars an error left open, so the error line starts on a line of its own."""
    bar_class = getattr(sys.modules.get("tqdm"), "tqdm", None)
    for bar in list(getattr(bar_class, "_instances", None) or []):
        bar.close()


def one_line(exc: BaseException) -> str:
    """The exception's message on one line (its type name when it has none)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def _cmd_demo(args: argparse.Namespace) -> int:
    from analog_peft.demo import run_demo

    run_demo(args.out, model_name=args.model, device_model=args.device_model, n_chips=args.chips,
             train_examples=args.train_examples, eval_examples=args.eval_examples, seed=args.seed,
             noise_eta=args.noise_eta)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from analog_peft.convert import convert
    from analog_peft.heads import head_record
    from analog_peft.models import load_causal_lm, load_classifier
    from analog_peft.training.cli import head_line

    model = load_causal_lm(args.model) if args.causal else load_classifier(args.model, 2, pooling=args.pooling)
    modules = args.modules.split(",") if "," in args.modules else args.modules
    report = convert(model, args.rpu, modules=modules)
    _log.info(report.table())
    head = head_record(model)
    if head is not None:
        _log.info(f"head: {head_line(head.to_dict())}")
    if args.report:
        report.to_json(args.report)
    return 0


def _parse_methods(items: Sequence[str]) -> list[dict]:
    """``NAME=DIR`` → one method; ``NAME=DIR0,DIR1,...`` → replicates ``NAME@0, NAME@1, ...`` (training seeds)."""
    methods = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--adapter (--method) expects NAME=ADAPTER_DIR (or NAME= for the bare base), got {item!r}")
        paths = [p.strip() for p in path.split(",")] if path else [""]
        if len(paths) > 1 and not all(paths):
            raise ValueError(f"--adapter (--method) {item!r}: an empty adapter in the list; give NAME=DIR0,DIR1,... (one per seed)")
        for i, one in enumerate(paths):
            methods.append({"name": f"{name}@{i}" if len(paths) > 1 else name,
                            "adapter": _adapter_dir(one) if one else None})
    return methods


def _chip_sampled(methods: list[dict], names: str | None) -> list[dict]:
    """Mark the methods named in ``--chip-sample A,B`` (a replicated ``NAME`` marks every ``NAME@i``)."""
    wanted = {n.strip() for n in (names or "").split(",") if n.strip()}
    known = {m["name"] for m in methods} | {m["name"].rsplit("@", 1)[0] for m in methods}
    if wanted - known:
        raise ValueError(f"--chip-sample {','.join(sorted(wanted - known))}: no such method; methods: {sorted(known)}")
    return [{**m, "chip_sample": m["name"] in wanted or m["name"].rsplit("@", 1)[0] in wanted} for m in methods]


def _adapter_dir(path: str) -> str:
    """Accept an adapter directory or a training run directory (uses its best adapter); ``peft:`` is kept."""
    from analog_peft.deploy import PEFT_PREFIX, adapter_path

    prefix = PEFT_PREFIX if path.startswith(PEFT_PREFIX) else ""
    p = adapter_path(path)
    for candidate in (p, p / "adapter" / "best", p / "adapter" / "last", p / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return prefix + str(candidate)
    return path


def _comma_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _device_params(text: str) -> dict:
    """``--device-params`` as a JSON object (a clear error naming the option otherwise)."""
    import json

    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--device-params is not valid JSON ({exc}): pass an object such as '{{\"eta\": 0.01}}'") from None
    if not isinstance(params, dict):
        raise ValueError(f"--device-params must be a JSON object such as '{{\"eta\": 0.01}}', got {text!r}")
    return params


#: training-config keys read by ``montecarlo --data-config`` → Monte Carlo config fields
_DATA_CONFIG_KEYS = {"task": "task", "data_dir": "data_dir", "eval_split": "split", "eval_file": "eval_file",
                     "text_column": "text_column", "text_pair_column": "text_pair_column",
                     "label_column": "label_column", "task_type": "task_type", "labels": "labels",
                     "num_labels": "num_labels", "data_name": "data_name"}
_MC_DATA_DEFAULTS = {"task": "sst2", "split": "dev"}


def _data_config(path: str) -> dict:
    """The data fields of a training config TOML (a run directory: its ``train_config.toml``)."""
    from pathlib import Path

    from analog_peft.training.tomlio import read_file

    file = Path(path) / "train_config.toml" if Path(path).is_dir() else Path(path)
    data = read_file(file, what="--data-config file")
    if data.get("hf_dataset"):
        raise ValueError(f"--data-config {file}: its data is the hub dataset {data['hf_dataset']!r}, and the Monte "
                         "Carlo engine reads local files; save the split to a file and pass --eval-file")
    fields = {field: data[key] for key, field in _DATA_CONFIG_KEYS.items() if data.get(key) not in (None, "", [], 0)}
    generation = data.get("generation") if isinstance(data.get("generation"), dict) else {}
    fields.update({k: int(generation[k]) for k in ("max_new_tokens", "num_beams") if k in generation})
    return fields


def _data_fields(args: argparse.Namespace) -> dict:
    """The Monte Carlo config's data fields: defaults, then ``--data-config``, then the flags."""
    fields = {**_MC_DATA_DEFAULTS, **(_data_config(args.data_config) if args.data_config else {})}
    for name in _DATA_CONFIG_KEYS.values():
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    return fields


def _decoder_fields(args: argparse.Namespace) -> dict:
    """``--metric``, ``--max-new-tokens``, ``--num-beams`` (decoder tasks) as Monte Carlo config fields."""
    fields: dict = {}
    if args.metric:
        fields["metrics"] = [m.strip() for m in args.metric.split(",") if m.strip()]
    if args.max_new_tokens is not None:
        fields["max_new_tokens"] = args.max_new_tokens
    if args.num_beams is not None:
        fields["num_beams"] = args.num_beams
    return fields


def _config_from_flags(args: argparse.Namespace) -> MonteCarloConfig:
    """The Monte Carlo config the flags describe."""
    from analog_peft.montecarlo.engine import MonteCarloConfig
    from analog_peft.montecarlo.stats import parse_time

    device_model: str | dict = args.device_model
    if args.device_params:
        device_model = {"name": args.device_model, "params": _device_params(args.device_params)}
    config = MonteCarloConfig(
        methods=_chip_sampled(_parse_methods(args.method), args.chip_sample),
        base_model=args.base,
        **{**_data_fields(args), **_decoder_fields(args)},
        max_examples=args.max_examples,
        device_model=device_model,
        rpu=args.rpu,
        allow_conversion_override=args.allow_conversion_override,
        subset_seed=args.subset_seed,
        deployment=args.deployment,
        n_chips=args.chips,
        times=[parse_time(t) for t in args.times.split(",") if t.strip()],
        seed=args.seed,
        compensate_drift=not args.no_drift_compensation,
        noisy_layers=args.noisy_layers or [],
        digital_layers=args.digital_layers or [],
        batch_size=args.batch_size,
        run=args.run or (args.out or "mc").rstrip("/").split("/")[-1],
        torch_device=args.torch_device,
        keep_chip_state=not args.low_memory,
        eval_stack=args.eval_stack,
        target_ci_width=args.target_ci_width,
        max_chips=args.max_chips,
        chip_batch=args.chip_batch,
        target_pair=[x.strip() for x in args.target_pair.split(",")] if args.target_pair else [],
        target_metric=args.target_metric or "",
        target_scope=args.target_scope,
    )
    return config


#: ``montecarlo`` options that are not config fields (allowed beside ``--config``)
_RUN_OPTIONS = {"config", "set", "dry_run", "out", "workers", "executor", "report", "threshold", "relative_threshold",
                "yield_reference", "func", "debug", "quiet", "verbose", "command", "parser_defaults"}


def _montecarlo_config(args: argparse.Namespace) -> MonteCarloConfig:
    """From the flags, or from ``--config FILE`` (a run's ``montecarlo_config.toml`` works) with ``--set`` overrides."""
    from analog_peft.montecarlo.engine import MonteCarloConfig
    from analog_peft.training.cli import apply_overrides
    from analog_peft.training.tomlio import read_file

    if not args.config:
        if args.set:
            raise ValueError("--set KEY=VALUE edits a --config file: pass --config FILE too, or use the flags")
        if not args.method:
            raise ValueError("montecarlo needs --adapter NAME=DIR (repeatable) or --config FILE")
        return _config_from_flags(args)
    given = sorted(k for k, default in args.parser_defaults.items()
                   if k not in _RUN_OPTIONS and getattr(args, k, default) != default)
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(f"with --config, set config fields with --set key=value, not flags ({flags})")
    data = apply_overrides(read_file(args.config, what="--config file"), args.set or [])
    return MonteCarloConfig.from_toml_dict(data, source=args.config)


def _cmd_montecarlo(args: argparse.Namespace) -> int:
    from analog_peft.montecarlo.engine import run_montecarlo

    config = _montecarlo_config(args)
    if args.dry_run:
        print(config.to_toml(), end="")
        return 0
    if not args.out:
        raise ValueError("montecarlo needs --out DIR (the run directory; an existing one with the same config resumes)")
    if config.target_ci_width is not None:
        from analog_peft.montecarlo.sequential import run_sequential

        df = run_sequential(config, args.out, workers=args.workers, executor=args.executor)
    else:
        df = run_montecarlo(config, args.out, workers=args.workers, executor=args.executor)
    _log.info(f"{len(df)} rows in {args.out}/results.csv")
    if args.report:
        from analog_peft.montecarlo.report import write_report

        files = write_report(args.out, threshold=args.threshold, relative_threshold=args.relative_threshold,
                             reference=args.yield_reference, target_ci_width=args.target_ci_width)
        _log.info(f"report: {files}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from analog_peft.montecarlo.report import write_report

    files = write_report(args.run_dir, out_dir=args.out, threshold=args.threshold,
                         relative_threshold=args.relative_threshold, reference=args.yield_reference,
                         target_ci_width=args.target_ci_width, figures=not args.no_figures)
    _log.info(files)
    return 0


def _add_yield_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, default=None, help="yield threshold (absolute metric value)")
    p.add_argument("--relative-threshold", type=float, default=None,
                   help="yield threshold r: a chip passes when value >= ref - (1 - r) * |ref| (= r * ref for ref > 0), "
                        "ref = the method's own digital score and, beside it, the common reference")
    p.add_argument("--yield-reference", default="best", metavar="best|METHOD",
                   help="common reference of the relative yield: the best digital score of all methods (default) "
                        "or the digital score of METHOD")


def _version() -> str:
    from analog_peft import __version__

    return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    noise.add_argument("-v", "--verbose", action="store_true", help="debug detail")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_convert(sub)
    _add_montecarlo(sub)
    _add_report(sub)
    from analog_peft.training.cli import add_train_parser
    add_train_parser(sub)
    for p in sub.choices.values():  # also accepted after the subcommand
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of errors")
    return parser


def _add_demo(sub: Any) -> None:
    """``demo``: the main job."""
    p = sub.add_parser("demo", help="end-to-end main job on the real MiniLM-L6 weights")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", default="minilm-l6")
    p.add_argument("--device-model", "--device", dest="device_model", default="pcm",
                   help="device model name (see `device_models.available()`; --device: the former name)")
    p.add_argument("--chips", type=positive_int, default=3)
    p.add_argument("--train-examples", type=positive_int, default=1000)
    p.add_argument("--eval-examples", type=positive_int, default=256)
    p.add_argument("--noise-eta", type=float, default=0.0,
                   help="relative-Gaussian base-weight noise in the training loop (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)


def _add_convert(sub: Any) -> None:
    """``convert``: convert a model and print its report."""
    from analog_peft.presets import PRESETS

    p = sub.add_parser("convert", help="convert a model and print the conversion report")
    p.add_argument("model", help="HF name/path or alias (minilm-l6, smollm2-135m)")
    p.add_argument("--rpu", default="standard", choices=PRESETS)
    p.add_argument("--modules", default="blocks", help="'blocks', 'all', or comma-separated names/patterns")
    p.add_argument("--causal", action="store_true", help="load as a causal LM instead of a classifier")
    p.add_argument("--pooling", default="auto", help="classifier head pooling: auto, cls, mean, last")
    p.add_argument("--report", help="write the report as JSON here")
    p.set_defaults(func=_cmd_convert)


def _add_montecarlo(sub: Any) -> None:
    """``montecarlo``: chips × times of each adapter."""
    import device_models
    from analog_peft.presets import PRESETS

    p = sub.add_parser("montecarlo", help="evaluate adapters across many simulated chips and inference times")
    p.add_argument("--config", default=None, metavar="TOML",
                   help="read the config from this file (a run's montecarlo_config.toml works); edit with --set")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="with --config: any field, TOML value (n_chips=50, device_model.params.eta=0.02)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as TOML and exit")
    p.add_argument("--adapter", "--method", dest="method", action="append", default=None, metavar="NAME=DIR",
                   help="adapter (or training run) directory per method, peft:DIR for a Hugging Face PEFT adapter; "
                   "repeat for several methods; NAME=DIR0,DIR1,... for several training seeds (deployed as "
                   "NAME@0, NAME@1, ... on the same chips)")
    p.add_argument("--chip-sample", default=None, metavar="NAME[,NAME]",
                   help="StochGRASP methods deployed with one sample of their (γ, β) per chip instead of the means")
    p.add_argument("--base", default="minilm-l6", help="base model the adapters were trained on")
    _add_mc_data_options(p)
    p.add_argument("--device-model", "--device", dest="device_model", default="pcm",
                   help=f"device model: {', '.join(device_models.available())} (--device: the former name)")
    p.add_argument("--device-params", default=None, help='JSON parameters, e.g. \'{"eta": 0.01}\'')
    p.add_argument("--rpu", default=None, choices=PRESETS,
                   help="RPU preset (default: each adapter's recorded conversion, conversion.json; mapped when none)")
    p.add_argument("--allow-conversion-override", action="store_true",
                   help="evaluate adapters on --rpu although they were trained on another preset (recorded)")
    p.add_argument("--subset-seed", type=int, default=0, help="seed of the --max-examples subset")
    p.add_argument("--deployment", default="periphery", choices=["periphery", "fused"])
    p.add_argument("--chips", type=positive_int, default=25,
                   help="number of chips (sequential mode: the first look)")
    _add_mc_sequential_options(p)
    p.add_argument("--times", default="1s,1h,1d,1w,1mo,1y", help="comma-separated inference times")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--no-drift-compensation", action="store_true")
    p.add_argument("--noisy-layers", default=None, type=_comma_list, metavar="P1,P2",
                   help="program only these layers with the device model (role:q, block:3, a module name; "
                        "default: all)")
    p.add_argument("--digital-layers", default=None, type=_comma_list, metavar="P1,P2",
                   help="keep these layers at their exact weights, as if computed digitally")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes (default 1: this process), or Ray actors with --executor ray "
                        "(default: one per available CPU of the cluster)")
    p.add_argument("--torch-device", default="cpu", help="where tiles are programmed and evaluated (cpu, cuda, cuda:1)")
    p.add_argument("--low-memory", action="store_true",
                   help="re-draw each chip's programming per time point instead of keeping it (no per-chip "
                        "state: 4 floats per analog weight less for PCM; same results, slower drift)")
    p.add_argument("--eval-stack", type=positive_int, default=1,
                   help="chip-batched evaluation: stack up to N time points of a chip into one batched forward "
                        "(same rows to float rounding; for GPUs, slower on CPU; needs --rpu mapped/ideal)")
    p.add_argument("--executor", default="process", choices=["process", "ray"],
                   help="ray: chips on Ray actors (pip install 'analog_peft[ray]'; joins $RAY_ADDRESS if set)")
    p.add_argument("--out", default=None, help="run directory (resumed if it exists with the same config); required "
                                                "unless --dry-run")
    p.add_argument("--run", default=None, help="run name in the table (default: the directory name)")
    p.add_argument("--report", action="store_true", help="write the HTML/Markdown report at the end")
    _add_yield_options(p)
    p.set_defaults(func=_cmd_montecarlo)
    p.set_defaults(parser_defaults={a.dest: a.default for a in p._actions if a.dest != "help"})


def _add_mc_data_options(p: argparse.ArgumentParser) -> None:
    """``montecarlo``'s evaluation data: task, split, the user's own file and its layout."""
    p.add_argument("--task", default=None,
                   help="a GLUE task (default sst2), custom (with --eval-file), e2e (generation) or lm (perplexity "
                        "of --eval-file, one text per line, or of the E2E references)")
    p.add_argument("--metric", default=None, metavar="M1,M2",
                   help="decoder tasks: metrics to report (e2e: BLEU,NIST,METEOR,ROUGE_L,CIDEr; lm: nll,perplexity)")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="e2e: tokens generated at most (64)")
    p.add_argument("--num-beams", type=positive_int, default=None, help="e2e: beam width (1 = greedy)")
    p.add_argument("--split", default=None, help="evaluation split (default dev; MNLI: dev_matched, dev_mismatched)")
    p.add_argument("--max-examples", type=positive_int, default=None, help="subsample the eval set (seeded)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--data-config", default=None, metavar="TOML",
                   help="read the data options (task, eval_file, columns, labels, ...) from a training config "
                        "TOML or a training run directory's train_config.toml; the flags below override it")
    p.add_argument("--eval-file", default=None,
                   help="your own evaluation file (CSV, TSV, JSON Lines, Parquet; --task lm: a text file)")
    p.add_argument("--text-column", default=None)
    p.add_argument("--text-pair-column", default=None, help="second text of sentence pairs")
    p.add_argument("--label-column", default=None)
    p.add_argument("--task-type", default=None, choices=["classification", "regression"])
    p.add_argument("--labels", default=None, type=_comma_list,
                   help="label names in index order, comma-separated (custom classification)")
    p.add_argument("--num-labels", default=None, type=positive_int, help="number of classes (custom data)")
    p.add_argument("--data-name", default=None, help="name of the data in the table and the report title")


def _add_mc_sequential_options(p: argparse.ArgumentParser) -> None:
    """``montecarlo``'s sequential mode: add chips until the CIs are narrow enough."""
    p.add_argument("--target-ci-width", type=float, default=None, metavar="W",
                   help="sequential mode: add chips until every 95%% CI (each method's mean, or --target-pair) "
                        "is at most W wide (high - low, metric units), up to --max-chips")
    p.add_argument("--max-chips", type=positive_int, default=None, help="sequential mode: the most chips to run")
    p.add_argument("--chip-batch", type=positive_int, default=10, help="sequential mode: chips added per look")
    p.add_argument("--target-pair", default=None, metavar="A,B",
                   help="sequential mode: stop on the CI of the paired difference A - B instead of the means")
    p.add_argument("--target-metric", default=None, help="sequential mode: metric (default: the task's primary)")
    p.add_argument("--target-scope", default="chips", choices=["chips", "all"],
                   help="sequential mode: the chip-level CI (default) or the CI over chips x examples x seeds")


def _add_report(sub: Any) -> None:
    """``report``: HTML + Markdown of a run directory."""
    p = sub.add_parser("report", help="HTML + Markdown report of a Monte Carlo run directory")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="output directory (default RUN_DIR/report)")
    _add_yield_options(p)
    p.add_argument("--target-ci-width", type=float, default=None, metavar="W",
                   help="CI width (high - low) of the sample-size table (default: the run's, else 0.01)")
    p.add_argument("--no-figures", action="store_true", help="tables only (no plots): a small report")
    p.set_defaults(func=_cmd_report)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 with a one-line message for invalid input)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    from analog_peft.logs import configure

    configure(-1 if args.quiet else 1 if args.verbose else 0)
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        if args.debug or not is_user_error(exc):
            raise
        _close_progress_bars()
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
