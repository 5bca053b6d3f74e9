"""What the engine scores on a chip: one evaluator per kind of task, behind one small interface.

An :class:`Evaluator` holds the evaluation data of a run (tokenised, batched, hashed) and scores one model
(a method on a programmed chip, or its digital version) in one call, returning the metric values (one row
of ``results.csv`` each) and the per-example arrays stored in ``chips/chip_NNNNN.npz``:

* ``classification`` / ``regression`` — the GLUE tasks and the user's own files: task metrics of the arg-max
  classes (or the single logit); arrays ``pred``, ``loss`` (unchanged from the engine's first version).
* ``generation`` — E2E: greedy or beam decoding with the KV cache, BLEU / NIST / METEOR / ROUGE-L / CIDEr
  against all references of each MR; arrays ``text`` (the generations) and ``length`` (generated tokens).
* ``lm`` — teacher-forced perplexity of a text set; arrays ``loss`` (mean NLL per token of each text) and
  ``tokens`` (scored tokens). See :mod:`.decoders`.

The per-chip forward noise is seeded per batch (``ChipProgrammer.seeded_forward("batch", i)``), so every
evaluation is a function of (chip seed, time, batch) only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

    from analog_peft.chip_stack import LinearMaps
    from analog_peft.chips import ChipProgrammer

    from .engine import EvalSet, MonteCarloConfig

#: tasks scored on a causal language model (the engine deploys a ``*ForCausalLM``, not a classifier)
GENERATION_TASK = "e2e"
LM_TASK = "lm"
DECODER_TASKS = (GENERATION_TASK, LM_TASK)
#: per-example arrays of one evaluation: name → array over the examples (in the evaluator's order)
Arrays = dict[str, np.ndarray]

__all__ = ["DECODER_TASKS", "GENERATION_TASK", "LM_TASK", "ClassifierEvaluator", "Evaluator", "is_decoder_task",
           "make_evaluator", "task_kind"]


class Evaluator(Protocol):
    """Scores one model on the run's evaluation data."""

    kind: str
    sha256: str
    record: dict[str, Any] | None

    @property
    def size(self) -> int:
        """Number of examples (MRs, texts, sentences)."""

    def evaluate(self, model: torch.nn.Module, chips: ChipProgrammer | None = None,
                 where: str = "evaluation") -> tuple[dict[str, float], Arrays]:
        """``(metrics, arrays)`` of ``model`` (per-batch forward noise seeded by ``chips`` when given)."""

    def write_examples(self, out: Path) -> None:
        """Write ``examples.csv`` (position in the arrays → data row, inputs, references)."""


def is_decoder_task(task: str) -> bool:
    """Whether ``task`` is scored on a causal LM (``e2e`` and its aliases, ``lm``)."""
    from analog_peft.tasks import get_task

    if str(task).lower() == LM_TASK:
        return True
    try:
        return get_task(task).kind == "generation"
    except (KeyError, ValueError):
        return False


def task_kind(task: str, regression: bool = False) -> str:
    """``generation``, ``lm``, ``regression`` or ``classification``."""
    if str(task).lower() == LM_TASK:
        return "lm"
    if is_decoder_task(task):
        return "generation"
    return "regression" if regression else "classification"


class ClassifierEvaluator:
    """The engine's classifier / regressor scoring (``engine.score_examples``) as an :class:`Evaluator`."""

    def __init__(self, eval_set: EvalSet) -> None:
        self.eval_set = eval_set
        self.kind = "regression" if eval_set.regression else "classification"
        self.sha256 = eval_set.sha256
        self.record = eval_set.record

    @property
    def size(self) -> int:
        return len(self.eval_set.labels)

    def evaluate(self, model: torch.nn.Module, chips: ChipProgrammer | None = None,
                 where: str = "evaluation") -> tuple[dict[str, float], Arrays]:
        from .engine import score_examples

        metrics, pred, loss = score_examples(model, self.eval_set, chips, where)
        return metrics, {"pred": pred, "loss": loss}

    def evaluate_stacked(self, model: torch.nn.Module, states: list[LinearMaps],
                         where: str = "evaluation") -> list[tuple[dict[str, float], Arrays]]:
        """:meth:`evaluate` of each chip state in ``states`` (from ``chip_stack.linear_maps``), in one
        batched forward per batch (``chip_stack.stacked``)."""
        from analog_peft.chip_stack import stacked

        from .engine import score_copies

        with stacked(model, states) as k:
            scored = score_copies(model, self.eval_set, k, None, where)
        return [(metrics, {"pred": pred, "loss": loss}) for metrics, pred, loss in scored]

    def write_examples(self, out: Path) -> None:
        from . import examples as ex

        es = self.eval_set
        ex.write_examples_csv(out, es.index or range(len(es.labels)), es.labels, es.texts or [""] * len(es.labels),
                              es.pairs)


def make_evaluator(config: MonteCarloConfig) -> Evaluator:
    """The evaluator of ``config``'s task, its data loaded and tokenised."""
    if is_decoder_task(config.task):
        from .decoders import GenerationEvaluator, PerplexityEvaluator

        cls = PerplexityEvaluator if task_kind(config.task) == "lm" else GenerationEvaluator
        return cls.from_config(config)
    from .engine import load_eval_set

    return ClassifierEvaluator(load_eval_set(config))


def stack_arrays(per_method: list[list[Arrays]]) -> Arrays:
    """``[method][time] → {name: (examples,)}`` as ``{name: (methods, times, examples)}``."""
    keys = list(per_method[0][0]) if per_method and per_method[0] else []
    return {k: np.stack([np.stack([a[k] for a in times]) for times in per_method]) for k in keys}
