"""Configuration checks of decoder studies (``task = "e2e"`` generation, ``task = "lm"`` perplexity).

Kept apart from the engine's classifier checks: what a decoder run needs (a causal LM base, the E2E data or
a text file, known metrics, sane decoding options) and how its fields are normalised before hashing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from analog_peft.architectures import ENCODER_ONLY
from analog_peft.tasks import E2E_METRICS, DataError

from .evaluators import GENERATION_TASK, LM_TASK, task_kind

if TYPE_CHECKING:
    from .engine import MonteCarloConfig

#: the data-layout fields of classification data, meaningless for a decoder task
_CLASSIFIER_FIELDS = ("text_column", "text_pair_column", "label_column", "task_type", "labels")


__all__ = ["decoder_data_label", "normalized_decoder_fields", "validate_classifier_options", "validate_decoder"]


def validate_classifier_options(config: MonteCarloConfig) -> None:
    """Refuse the decoder-only options on a classification / regression task."""
    if config.metrics:
        raise ValueError(f"--metric {','.join(config.metrics)} selects the metrics of a decoder task (e2e, lm); "
                         f"task {config.task!r} always reports its own metrics: drop --metric")
    if config.max_new_tokens != 64 or config.num_beams != 1:
        raise ValueError(f"--max-new-tokens / --num-beams set the decoding of task e2e; task {config.task!r} "
                         "classifies: drop them")


def validate_decoder(config: MonteCarloConfig) -> None:
    """Raise ``ValueError`` / ``DataError`` naming the problem and the fix for a decoder study."""
    from .decoders import LM_METRICS

    kind = task_kind(config.task)
    allowed = E2E_METRICS if kind == "generation" else LM_METRICS
    unknown = [m for m in config.metrics if m not in allowed]
    if unknown:
        raise ValueError(f"--metric {','.join(unknown)}: unknown for task {config.task!r}; choose from "
                         f"{','.join(allowed)}")
    if config.max_new_tokens < 1 or config.num_beams < 1:
        raise ValueError(f"max_new_tokens and num_beams must be >= 1, got {config.max_new_tokens} and "
                         f"{config.num_beams}")
    used = [f for f in _CLASSIFIER_FIELDS if getattr(config, f)]
    if used or config.num_labels:
        names = ", ".join(used + (["num_labels"] if config.num_labels else []))
        raise ValueError(f"{names}: classification-data options, meaningless for task {config.task!r}; drop them")
    if kind == "generation" and config.eval_file:
        raise DataError("task e2e reads the E2E csv (--data-dir, --split); for your own texts use --task lm "
                        "--eval-file FILE (perplexity, one text per line)")
    if config.target_ci_width is not None and config.target_metric == "" and kind == "lm":
        raise ValueError("the sequential mode on task lm needs --target-metric nll or perplexity")
    if config.target_ci_width is not None and config.target_scope != "chips":
        raise ValueError("decoder studies keep no per-example scores for the all-sources CI: use --target-scope "
                         "chips")
    check_causal_lm(config.base_model, config.task)


def check_causal_lm(name: str, task: str) -> None:
    """Refuse a base model that is not a decoder-only causal LM (an encoder cannot generate)."""
    from transformers import AutoConfig

    from analog_peft.models import _kwargs, resolve

    src = resolve(name)
    try:
        hf = AutoConfig.from_pretrained(src.path, **_kwargs(src))
    except (OSError, ValueError) as err:
        raise ValueError(f"base model {name!r} has no readable config ({err}); pass a causal LM") from None
    archs = list(getattr(hf, "architectures", None) or [])
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) or getattr(hf, "is_decoder", False)
    if not archs:  # GGUF configs name no architecture: judge by the model type
        causal = hf.model_type not in ENCODER_ONLY
    if not causal or getattr(hf, "is_encoder_decoder", False):
        raise ValueError(f"task {task!r} runs on a decoder-only causal LM; base {name!r} is "
                         f"{', '.join(archs) or hf.model_type}: use --base smollm2-135m, gpt2 or another causal LM")


def normalized_decoder_fields(data: dict[str, Any]) -> dict[str, Any]:
    """``MonteCarloConfig.normalized``'s dict for a decoder task: absolute data paths, ``num_labels = 0``,
    absolute adapter folders, and the metric list in the task's canonical order."""
    from analog_peft.deploy import normalize_adapter

    from .decoders import LM_METRICS
    from .engine import _effective_data_dir

    if data.get("eval_file"):
        data["eval_file"], data["data_dir"] = str(Path(data["eval_file"]).expanduser().resolve()), None
    else:
        data["data_dir"] = _effective_data_dir(GENERATION_TASK, data["split"], data.get("data_dir"))
    data["num_labels"] = 0
    order = E2E_METRICS if task_kind(data["task"]) == "generation" else LM_METRICS
    given = list(data.get("metrics") or [])
    data["metrics"] = [m for m in order if m in given] + [m for m in given if m not in order]  # unknown: refused
    data["methods"] = [{**m, "adapter": None if m["adapter"] is None else normalize_adapter(m["adapter"])}
                       for m in data["methods"]]
    return data


def decoder_data_label(config: MonteCarloConfig) -> str:
    """The ``task`` column: ``e2e``; ``lm:<data name or file name>`` or ``lm:e2e`` (the E2E references)."""
    if task_kind(config.task) == "generation":
        return GENERATION_TASK
    if config.data_name:
        return f"{LM_TASK}:{config.data_name}"
    return f"{LM_TASK}:{Path(config.eval_file).name}" if config.eval_file else f"{LM_TASK}:e2e"
