"""Classification heads that fit the checkpoint: how token states are pooled, and which modules the head owns.

Poolings (:data:`POOLINGS`):

* ``cls`` — the first token through the model's pooler (BERT's ``dense`` + ``tanh``); the pooler is part of
  the head and **trains with it** (it counts in the trainable parameters and is saved with the adapter).
* ``mean`` — the mean of the token states over non-padding tokens (sentence-transformers' mean pooling),
  straight into the classifier; the pooler's weights are not used.
* ``last`` — the last non-padding token (decoder classifiers: GPT-2, Llama); the model's own behaviour.
* ``auto`` (the default) — a sentence-transformers ``1_Pooling/config.json`` next to the weights decides
  (all-MiniLM-L6-v2 says mean: its ``pooler.dense`` is an untrained initialisation); without one, ``cls``
  when the checkpoint holds trained pooler weights, ``mean`` when the pooler would be newly initialised,
  ``last`` for decoders.
* ``native`` — the model class's own pooling with the checkpoint's pooler frozen and *not* part of the
  head. Only for adapters that record no head (made before heads were recorded, or by Hugging Face PEFT):
  it rebuilds exactly the model they were trained on. :func:`resolve_pooling` never picks it.

The resolved choice is stored on the model (:func:`head_record`) and saved with every adapter and run, so a
deployment rebuilds exactly the trained head.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

POOLINGS = ("auto", "cls", "mean", "last", "native")
#: Head modules of a classifier, by name (the pooler joins them in ``cls`` mode).
CLASSIFIER_MODULES = ("classifier", "score")
#: Pooling of adapters that record none (see the module docstring).
UNRECORDED = "native"
_RECORD_ATTR = "analog_peft_head"
_ST_POOLING = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_lasttoken": "last"}


class HeadError(ValueError):
    """A pooling that does not exist or does not fit the model."""


@dataclass(frozen=True)
class HeadRecord:
    """What a classifier's head is: its pooling, why, and which weights were newly initialised at load."""

    pooling: str
    reason: str
    newly_initialized: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise HeadError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    return pooling


def is_decoder(model: nn.Module) -> bool:
    """Whether a sequence classifier pools the last token (GPT-2, Llama, ... : a ``score`` head)."""
    return hasattr(model, "score") and not hasattr(model, "classifier")


def _pooler(model: nn.Module) -> nn.Module | None:
    base = getattr(model, getattr(model, "base_model_prefix", ""), None)
    return getattr(base, "pooler", None) if isinstance(base, nn.Module) else None


def sentence_transformers_pooling(model_dir: str | Path) -> str | None:
    """The pooling named by ``1_Pooling/config.json`` in ``model_dir`` (or its parent), if any."""
    for root in (Path(model_dir), Path(model_dir).parent):
        path = root / "1_Pooling" / "config.json"
        if path.is_file():
            data = json.loads(path.read_text())
            chosen = [mode for key, mode in _ST_POOLING.items() if data.get(key)]
            return chosen[0] if len(chosen) == 1 else None
    return None


def resolve_pooling(model: nn.Module, pooling: str, model_dir: str | Path | None, newly: list[str]) -> tuple[str, str]:
    """``(pooling, reason)``: ``auto`` resolved for ``model`` (see the module docstring); others checked."""
    check_pooling(pooling)
    decoder = is_decoder(model)
    if pooling != "auto":
        if decoder and pooling in ("cls", "mean"):
            raise HeadError(f"pooling {pooling!r} does not fit a decoder classifier: it pools the last token "
                            "(use pooling 'last' or 'auto')")
        if not decoder and pooling == "last":
            raise HeadError("pooling 'last' is for decoder classifiers; an encoder takes 'cls' or 'mean'")
        return pooling, "requested"
    if decoder:
        return "last", "decoder classifier: last non-padding token"
    st = sentence_transformers_pooling(model_dir) if model_dir else None
    if st is not None and st != "last":
        return st, "sentence-transformers 1_Pooling/config.json"
    pooler = _pooler(model)
    if pooler is None:
        return "cls", "the model has no pooler: its classifier reads the first token"
    prefix = getattr(model, "base_model_prefix", "")
    if any(k.startswith(f"{prefix}.pooler.") for k in newly):
        return "mean", "the pooler's weights are not in the checkpoint (newly initialised)"
    return "cls", "trained pooler weights in the checkpoint"


class MaskedMeanPooling(nn.Module):
    """Mean of the token states over the attention mask (set per forward by :func:`_stash_attention_mask`)."""

    def __init__(self) -> None:
        super().__init__()
        self.mask: Tensor | None = None

    def forward(self, hidden_states: Tensor) -> Tensor:
        mask = self.mask
        if mask is None or mask.shape != hidden_states.shape[:2]:
            return hidden_states.mean(dim=1)
        m = mask.to(hidden_states.dtype).unsqueeze(-1)
        return (hidden_states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class MeanPooledHead(nn.Module):
    """A classifier that reads the first token (RoBERTa's head) fed the masked mean of the tokens instead."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head
        self.pool = MaskedMeanPooling()

    def forward(self, features: Tensor, **kwargs: Any) -> Tensor:
        return self.head(self.pool(features).unsqueeze(1), **kwargs)


def _stash_attention_mask(model: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
    """Forward pre-hook: hand the batch's attention mask to the model's mean-pooling modules."""
    mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    for module in model.modules():
        if isinstance(module, MaskedMeanPooling):
            module.mask = mask


def _clear_attention_mask(model: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
    """Forward hook: drop the stashed mask (a later direct call of the encoder must not see a stale one)."""
    for module in model.modules():
        if isinstance(module, MaskedMeanPooling):
            module.mask = None


def _install_mean(model: nn.Module) -> None:
    prefix = getattr(model, "base_model_prefix", "")
    pooler = _pooler(model)
    if pooler is not None and hasattr(pooler, "dense") and hasattr(pooler, "activation"):
        getattr(model, prefix).pooler = MaskedMeanPooling()
    elif pooler is None and isinstance(getattr(model, "classifier", None), nn.Module) and hasattr(model.classifier, "out_proj"):
        model.classifier = MeanPooledHead(model.classifier)
    else:
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        raise HeadError(f"pooling 'mean' is not implemented for model_type={model_type!r}; use pooling 'cls'")
    model.register_forward_pre_hook(_stash_attention_mask, with_kwargs=True)
    model.register_forward_hook(_clear_attention_mask, with_kwargs=True)


def build_head(model: nn.Module, pooling: str, model_dir: str | Path | None, newly: list[str]) -> HeadRecord:
    """Install ``pooling`` on a freshly loaded sequence classifier and record it on the model."""
    resolved, reason = (pooling, "recorded") if pooling == UNRECORDED else resolve_pooling(model, pooling, model_dir, newly)
    if resolved == "mean":
        _install_mean(model)
    record = HeadRecord(resolved, reason, sorted(newly))
    setattr(model, _RECORD_ATTR, record)
    return record


def head_record(model: nn.Module) -> HeadRecord | None:
    """The head built by :func:`build_head` on ``model`` (or the Hugging Face model inside a wrapper)."""
    for module in (model, getattr(model, "model", None), getattr(model, "base_model", None)):
        record = getattr(module, _RECORD_ATTR, None) if module is not None else None
        if isinstance(record, HeadRecord):
            return record
    return None


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level names of the modules the head trains: ``classifier``/``score``, plus the pooler in ``cls``."""
    names = [n for n in CLASSIFIER_MODULES if isinstance(getattr(model, n, None), nn.Module)]
    record = head_record(model)
    if record is not None and record.pooling == "cls" and _pooler(model) is not None:
        names.append(f"{model.base_model_prefix}.pooler")
    return names


def recorded_pooling(config: dict[str, Any]) -> str:
    """The pooling an adapter config records (:data:`UNRECORDED` when it records none)."""
    head = config.get("head") if isinstance(config, dict) else None
    return check_pooling(head["pooling"]) if isinstance(head, dict) and "pooling" in head else UNRECORDED
