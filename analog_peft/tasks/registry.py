"""Task registry: ``get_task("sst2" | "cola" | "e2e")`` returns a :class:`TaskSpec`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TaskKind = Literal["classification", "generation"]


@dataclass(frozen=True)
class TaskSpec:
    """Static description of a task and entry points to its data and metrics.

    Attributes:
        name: canonical task name.
        kind: ``"classification"`` or ``"generation"``.
        num_labels: number of classes (0 for generation tasks).
        metric: name of the primary metric, a key of :meth:`compute_metrics`'s result.
        aliases: other accepted names (matched case-insensitively).
        subdir: folder of the task under the data root.
        split_files: file name of each split inside ``subdir``.
        text_column / label_column: column names (header files) or 0-based indices (headerless files).
        has_header: whether the TSV files start with a header row.
        hf_name: ``(path, config)`` of the task on the Hugging Face hub (``load_split(..., hf_name=True)``).
    """

    name: str
    kind: TaskKind
    num_labels: int
    metric: str
    aliases: tuple[str, ...] = ()
    subdir: str = ""
    split_files: dict[str, str] = field(default_factory=dict)
    text_column: str | int = "sentence"
    label_column: str | int = "label"
    has_header: bool = True
    hf_name: tuple[str, str] | None = None

    def load_split(self, split: str, **kwargs: Any) -> Any:
        """Load ``split``: a :class:`~analog_peft.tasks.glue.ClassificationData` or a list of
        :class:`~analog_peft.tasks.e2e.E2EExample` (see ``glue.load_split`` / ``e2e.load_e2e``)."""
        if self.kind == "classification":
            from .glue import load_split

            return load_split(self, split, **kwargs)
        from .e2e import load_e2e

        return load_e2e(split, **kwargs)

    def compute_metrics(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Task metrics; ``references`` are int labels (classification) or lists of strings (E2E)."""
        from . import metrics

        if self.kind == "classification":
            return metrics.classification_metrics(predictions, references)
        return metrics.e2e_metrics(list(predictions), [list(r) for r in references])


_TASKS: dict[str, TaskSpec] = {
    "sst2": TaskSpec(
        name="sst2",
        kind="classification",
        num_labels=2,
        metric="accuracy",
        aliases=("sst-2", "sst_2", "glue/sst2", "glue-sst2"),
        subdir="glue/SST-2",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="sentence",
        label_column="label",
        has_header=True,
        hf_name=("glue", "sst2"),
    ),
    "cola": TaskSpec(
        name="cola",
        kind="classification",
        num_labels=2,
        metric="matthews_correlation",
        aliases=("glue/cola", "glue-cola"),
        subdir="glue/CoLA",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column=3,
        label_column=1,
        has_header=False,
        hf_name=("glue", "cola"),
    ),
    "e2e": TaskSpec(
        name="e2e",
        kind="generation",
        num_labels=0,
        metric="BLEU",
        aliases=("e2e_nlg", "e2e-nlg", "e2e_nlg_cleaned"),
        subdir="e2e",
        split_files={"train": "trainset.csv", "dev": "devset.csv", "test": "testset_w_refs.csv"},
        text_column="mr",
        label_column="ref",
    ),
}

SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev", "training": "train"}


def list_tasks() -> list[str]:
    """Canonical names of the registered tasks."""
    return sorted(_TASKS)


def get_task(name: str | TaskSpec) -> TaskSpec:
    """Look a task up by name or alias (case-insensitive); a :class:`TaskSpec` is returned unchanged."""
    if isinstance(name, TaskSpec):
        return name
    key = str(name).strip().lower()
    for spec in _TASKS.values():
        if key == spec.name or key in spec.aliases:
            return spec
    raise ValueError(f"Unknown task {name!r}. Valid tasks: {', '.join(list_tasks())}.")


def canonical_split(split: str) -> str:
    """Map split aliases (``validation``, ``val``...) to the names used here: ``train``, ``dev``, ``test``."""
    key = split.strip().lower()
    return SPLIT_ALIASES.get(key, key)
