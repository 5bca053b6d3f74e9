"""Checks, data and model building for a run: everything that can fail does so here, before training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analog_peft.architectures import ENCODER_ONLY
from analog_peft.training.config import HEAD_ONLY, PEFT, ConfigError, TrainConfig


@dataclass
class TaskData:
    """Tokenised training features, evaluation data and the collate function of a run."""

    train: list[dict[str, Any]]
    eval_features: list[dict[str, Any]]
    eval_refs: list[Any]  # labels (classification), scores (regression) or reference lists (E2E)
    eval_inputs: list[str]  # E2E MRs ("" for classification)
    collate: Any
    kind: str
    record: dict[str, Any] | None = None  # name, files and sha256 of the data (``tasks.data_record``)


def model_config(name: str) -> Any:
    """The Hugging Face config of ``name`` (alias, hub name or path) without loading weights."""
    from transformers import AutoConfig

    from analog_peft.models import _kwargs, resolve

    src = resolve(name)
    try:
        return AutoConfig.from_pretrained(src.path, **_kwargs(src))
    except OSError as exc:
        raise ConfigError(f"model {name!r} not found ({exc})") from exc


def check_task_model(config: TrainConfig, task: Any) -> None:
    """Refuse task/model combinations that cannot work: E2E on an encoder, classification on a bare causal LM."""
    hf = model_config(config.model)
    mtype = getattr(hf, "model_type", "")
    archs = list(getattr(hf, "architectures", None) or [])
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(hf, "is_decoder", False)
    if task.kind == "generation":
        if mtype in ENCODER_ONLY or getattr(hf, "is_encoder_decoder", False):
            raise ConfigError(
                f"task {task.name!r} generates text and needs a decoder-only causal LM; {config.model!r} is "
                f"{mtype!r} ({'encoder-decoder' if getattr(hf, 'is_encoder_decoder', False) else 'encoder-only'}). "
                "Use smollm2-135m, gpt2 or another causal LM."
            )
        if config.method == HEAD_ONLY:
            raise ConfigError("method 'head' trains a classification head; E2E has none (use an adapter method)")
    else:
        has_cls = any(a.endswith("ForSequenceClassification") for a in archs)
        if causal and not has_cls and not config.allow_decoder_classifier:
            raise ConfigError(
                f"task {task.name!r} needs a sequence-classification model; {config.model!r} is a causal LM "
                f"({', '.join(archs) or mtype}) without a classification head. Use an encoder such as minilm-l6, "
                "or set allow_decoder_classifier = true to train a new head on the last token."
            )


def _hf_name(config: TrainConfig) -> Any:
    if not config.hf_dataset:
        return None
    return True if config.hf_dataset == "default" else tuple(config.hf_dataset.split("/", 1))


def resolve_task(config: TrainConfig) -> tuple[TrainConfig, Any]:
    """``(config, task)``: the task of the config; custom classification data without a label set gets the one
    of its training file, written into the returned config (so the saved ``train_config.toml`` has it)."""
    from analog_peft.tasks import DataError, get_task
    from analog_peft.tasks import resolve_task as resolve_data_task

    try:
        task = get_task(config.task)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if task.kind == "generation":
        return config, task
    try:
        task = resolve_data_task(config.data_options(), config.train_split, data_dir=config.data_dir or None,
                                 hf_name=_hf_name(config))
    except DataError as exc:
        raise ConfigError(str(exc)) from exc
    if task.kind == "classification" and not (config.labels or config.num_labels) and task.name == "custom":
        config = config.replace(labels=list(task.label_names), num_labels=task.num_labels)
    return config, task


def load_task_data(config: TrainConfig, task: Any, tokenizer: Any) -> TaskData:
    """Load, subsample and tokenise the train/eval splits (missing files and bad columns raise here)."""
    from analog_peft import tasks as T

    data_dir = config.data_dir or None
    n_train, n_eval = config.train_examples or None, config.eval_examples or None
    if task.kind != "generation":
        opts = config.data_options()
        kw = dict(data_dir=data_dir, seed=config.seed, hf_name=_hf_name(config), **opts.columns())
        train = T.load_split(task, config.train_split, max_examples=n_train, path=config.train_file or None, **kw)
        dev = T.load_split(task, config.eval_split, max_examples=n_eval, path=config.eval_file or None, **kw)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

        def collate(feats: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
            return T.pad_collate(feats, pad_token_id=pad)

        record = T.data_record(T.data_name(opts, task), task, {"train": train, "eval": dev})
        return TaskData(T.encode_classification(tokenizer, train, config.max_length),
                        T.encode_classification(tokenizer, dev, config.max_length),
                        list(dev.labels), [""] * len(dev), collate, task.kind, record)
    if config.hf_dataset:
        raise ConfigError("hf_dataset is supported for classification tasks; for E2E use the CSV files (data_dir)")
    train_ex = T.load_e2e(config.train_split, data_dir=data_dir, max_examples=n_train, seed=config.seed)
    eval_ex = T.load_e2e(config.eval_split, data_dir=data_dir, max_examples=n_eval, seed=config.seed)
    feats = T.encode_lm_pairs(tokenizer, T.training_pairs(train_ex), config.max_length)

    def lm_collate(f: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return T.lm_collate(f, tokenizer)

    return TaskData(feats, [], [ex.refs for ex in eval_ex], [ex.mr for ex in eval_ex], lm_collate, "generation")


def load_base(config: TrainConfig, task: Any, pooling: str | None = None) -> nn.Module:
    """The pretrained base model for the task (digital; a new classification head seeded by ``seed``, pooling
    as ``pooling`` or, when None, as the config says)."""
    from analog_peft.models import load_causal_lm, load_classifier

    if task.kind != "generation":
        return load_classifier(config.model, num_labels=task.num_labels, seed=config.seed,
                               pooling=pooling or config.pooling)
    return load_causal_lm(config.model)


def convert_base(model: nn.Module, config: TrainConfig) -> Any:
    """Convert to analog tiles with the recorded preset (no-op for a digital base); returns the report.

    The model's conversion record names the preset itself: aihwkit's training-time weight modifier is
    training noise, not part of the deployed conversion.
    """
    if config.base == "digital":
        return None
    from dataclasses import replace

    from analog_peft.conversion_config import ATTR
    from analog_peft.convert import convert
    from analog_peft.presets import RPUPreset
    from analog_peft.training.noise import modifier_rpu

    rpu = modifier_rpu(config.base, config.noise) if config.noise.mode == "aihwkit_modifier" else config.base
    report = convert(model, rpu)
    setattr(model, ATTR, replace(getattr(model, ATTR), rpu=RPUPreset(config.base).to_dict()))
    return report


def attach_method(model: nn.Module, config: TrainConfig) -> Any:
    """Attach the configured adapter (any method, the head-only baseline included, or a Hugging Face PEFT one)."""
    from analog_peft.methods import attach, config_from_dict

    if config.method == PEFT:
        from analog_peft.peft_bridge.adapter import attach_peft

        return attach_peft(model, config.peft_config, seed=config.seed)
    options = {"seed": config.seed, **config.method_options}
    return attach(model, config_from_dict({"method": config.method, **options}))


def load_trained(run_dir: str | Path, which: str = "best", torch_device: str = "cpu") -> tuple[nn.Module, Any, TrainConfig]:
    """Rebuild a trained run: ``(base model, adapted model, config)``.

    The base is loaded as at training time (digital, or converted with the recorded RPU preset, with the
    saved input-range calibration if any) and ``adapter/<which>`` (``best`` or ``last``) is loaded onto it.
    No chip is programmed: the Monte Carlo engine does that.
    """
    from analog_peft.calibration import load_calibration
    from analog_peft.methods import load_adapter

    run_dir = Path(run_dir)
    cfg_path = run_dir / "train_config.toml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: {run_dir} is not a training run directory")
    config = TrainConfig.from_toml(cfg_path)
    adapter_dir = run_dir / "adapter" / which
    if not adapter_dir.is_dir():
        raise FileNotFoundError(f"{adapter_dir} not found (which must be 'best' or 'last')")
    from analog_peft.deploy import adapter_pooling

    model = load_base(config, resolve_task(config)[1], pooling=adapter_pooling(adapter_dir))
    convert_base(model, config)
    load_calibration(model, run_dir)
    adapted = load_adapter(model, adapter_dir)
    adapted.to(torch_device).eval()
    return model, adapted, config
