"""``analog-peft train``: a TOML config file and/or flags (flags override the file)."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from analog_peft.logs import get_logger
from analog_peft.training.config import ConfigError, TrainConfig

_log = get_logger("training.cli")
def comma_list(text: str) -> list[str]:
    """``a,b,c`` → ``["a", "b", "c"]`` (a flag's list value)."""
    return [item.strip() for item in text.split(",") if item.strip()]


#: flag → TrainConfig field (type taken from the field's default).
_FLAGS = {
    "model": str, "task": str, "method": str, "rpu": str, "seed": int, "epochs": int, "max_steps": int,
    "batch_size": int, "max_length": int, "lr": float, "schedule": str, "train_examples": int,
    "eval_examples": int, "data_dir": str, "out_dir": str, "torch_device": str, "eval_every": int,
    "stop_after_steps": int, "num_threads": int,
    "train_file": str, "eval_file": str, "text_column": str, "text_pair_column": str, "label_column": str,
    "task_type": str, "labels": comma_list, "num_labels": int, "data_name": str, "hf_dataset": str,
    "pooling": str,
}
#: flags with a former name: ``--device`` (the torch device; ``--device-model`` is a device model in ``montecarlo``)
_FLAG_NAMES = {"torch_device": ("--torch-device", "--device")}


def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML (``3``, ``1e-3``, ``true``, ``"x"``, ``[1, 2]``, ``{device_model = "pcm"}``), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` pairs; dotted keys reach into tables (``noise.mode=device``, ``method_options.k=32``)."""
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        *parents, leaf = key.strip().split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a table")
        node[leaf] = parse_value(value.strip())
    return data


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    data = TrainConfig.from_toml(Path(args.config)).to_dict() if args.config else {}
    for name in _FLAGS:
        value = getattr(args, name, None)
        if value is not None:
            data[name] = value
    if args.no_progress:
        data["progress"] = False
    if args.no_resume:
        data["resume"] = False
    return TrainConfig.from_dict(apply_overrides(data, args.set or []))


def _cmd_train(args: argparse.Namespace) -> int:
    from analog_peft.training.loop import train

    config = config_from_args(args)
    if args.dry_run:
        print(config.to_toml(), end="")
        return 0
    try:
        result = train(config)
    except KeyboardInterrupt:
        _log.info(f"\ninterrupted: trainer state saved in {config.out_dir}/trainer_state; run the same command to resume")
        return 130
    if result.interrupted:
        _log.info(f"stopped after {result.steps} steps; run the same command without stop_after_steps to resume")
        return 0
    s = result.summary
    tp = s["trainable_params"]
    _log.info(
        f"{s['method']} on {(s.get('data') or {}).get('name', s['task'])}: {s['metric_name']} = {s['metric']:.4f} (best, {s['eval_split']}), "
        f"trainable {tp['trainable']:,} of {tp['total']:,} ({tp['percent']:.4f}%), {s['wall_time_s']:.0f} s "
        f"-> {result.out_dir}"
    )
    if s.get("head"):
        _log.info(f"head: {head_line(s['head'])}")
    return 0


def head_line(head: dict[str, Any]) -> str:
    """One line on a classifier's head: its pooling, why, and the weights that were newly initialised."""
    newly = ", ".join(head.get("newly_initialized") or []) or "none"
    return f"pooling {head['pooling']} ({head['reason']}); newly initialised: {newly}"


def add_train_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``train`` on the ``analog-peft`` sub-parsers."""
    p = sub.add_parser(
        "train",
        help="train an adapter (noise-aware options), evaluate, checkpoint, resume",
        description="Train an adapter on a task. Examples:\n"
        "  analog-peft train --config run.toml\n"
        "  analog-peft train --method grasp --train-examples 2000 --out-dir runs/grasp\n"
        "  analog-peft train --task custom --train-file a.csv --eval-file b.csv --text-column review "
        "--label-column stars\n"
        "  analog-peft train --method stochgrasp --set 'method_options.sigma_target={device_model=\"pcm\", t=86400.0}' "
        "--set noise.mode=device --set noise.device_model=pcm --set noise.t=86400.0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="TOML file with TrainConfig fields (a run's train_config.toml works too)")
    for name, typ in _FLAGS.items():
        flags = _FLAG_NAMES.get(name, ("--" + name.replace("_", "-"),))
        p.add_argument(*flags, dest=name, type=typ, default=None,
                       help=f"TrainConfig.{name}" + (" (comma-separated)" if typ is comma_list else ""))
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any field, TOML value; dotted keys for tables (noise.mode=device, method_options.k=32)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    p.add_argument("--no-resume", action="store_true", help="start over even if out_dir holds a trainer state")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config as TOML and exit")
    p.set_defaults(func=_cmd_train)
    return p
