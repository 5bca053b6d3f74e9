"""Evaluation with the task's real metrics: the GLUE metrics of classification / regression, or the E2E metrics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from analog_peft.finite import check_finite_logits
from analog_peft.training.config import GenerationConfig
from analog_peft.training.generation import generate_texts


def _where(model: nn.Module) -> str:
    method = getattr(model, "method", None)
    return f"evaluation of method {method!r}" if isinstance(method, str) else "evaluation"


@torch.no_grad()
def predict_labels(
    model: nn.Module,
    features: Sequence[dict[str, Any]],
    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    where: str | None = None,
    regression: bool = False,
) -> list[int] | list[float]:
    """Arg-max class of every feature (in order), or its single logit when ``regression``; NaN/inf logits
    raise ``NonFiniteError`` naming ``where``."""
    where = where or _where(model)
    model.eval()
    preds: list[Any] = []
    for i in range(0, len(features), batch_size):
        batch = collate([{k: v for k, v in f.items() if k != "labels"} for f in features[i : i + batch_size]])
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        check_finite_logits(logits, f"{where}, examples {i}-{i + len(logits) - 1}",
                            "check the adapter's tensors, the learning rate and the noise settings")
        preds.extend(predictions(logits, regression))
    return preds


def predictions(logits: torch.Tensor, regression: bool) -> list[int] | list[float]:
    """Predicted classes (arg-max) or, for regression, the single logit of each row."""
    return logits[:, 0].tolist() if regression else logits.argmax(-1).tolist()


def evaluate(
    model: nn.Module,
    task: Any,
    data: Any,
    tokenizer: Any,
    *,
    batch_size: int = 64,
    generation: GenerationConfig | dict[str, Any] | None = None,
    max_length: int = 128,
    device: str | torch.device = "cpu",
    progress: bool = False,
    where: str | None = None,
) -> dict[str, Any]:
    """Metrics of ``model`` on the run's evaluation data (a :class:`~analog_peft.training.setup.TaskData`).

    Classification and regression return the task's metrics (``task.metrics``, e.g. accuracy and Matthews
    correlation, F1, Pearson and Spearman); E2E returns BLEU, NIST, METEOR,
    ROUGE_L and CIDEr of the generations against all references (plus ``predictions``). Non-finite
    classification logits raise :class:`~analog_peft.finite.NonFiniteError` naming ``where`` (default: the method).
    """
    if data.kind != "generation":
        preds = predict_labels(model, data.eval_features, data.collate, batch_size, device, where,
                               regression=data.kind == "regression")
        return task.compute_metrics(preds, data.eval_refs)
    gen = GenerationConfig.coerce(generation)
    preds = generate_texts(
        model, tokenizer, data.eval_inputs, num_beams=gen.num_beams,
        max_new_tokens=gen.max_new_tokens, batch_size=gen.batch_size,
        max_prompt_length=max_length, device=device, progress=progress,
    )
    metrics: dict[str, Any] = dict(task.compute_metrics(preds, data.eval_refs))
    metrics["predictions"] = preds
    return metrics
