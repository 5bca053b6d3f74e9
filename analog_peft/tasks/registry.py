"""Task registry: ``get_task(name)`` returns a :class:`TaskSpec`.

Tasks: the nine GLUE tasks (``cola``, ``sst2``, ``mrpc``, ``stsb``, ``qqp``, ``mnli``, ``qnli``, ``rte``,
``wnli``) read from the GLUE release's TSV layout, ``custom`` (the user's own files, see
:mod:`analog_peft.tasks.userdata`) and ``e2e`` (generation).

String labels map to ints in the order of the GLUE datasets on the Hugging Face hub (and TFDS), so TSV and
hub data agree: MNLI entailment/neutral/contradiction = 0/1/2, QNLI and RTE entailment/not_entailment = 0/1.
Primary metric (model selection) = the first number the GLUE leaderboard lists: F1 for MRPC and QQP,
Pearson for STS-B, Matthews for CoLA, accuracy for the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TaskKind = Literal["classification", "regression", "generation"]
#: metrics of a classification task unless it names others (SST-2 and CoLA report exactly these)
CLASSIFICATION_METRICS = ("accuracy", "matthews_correlation")
REGRESSION_METRICS = ("pearson", "spearman")


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
        text_pair_column: the second sentence of pair tasks (tokenised as ``tokenizer(a, b)``), else None.
        label_names: string labels in index order (a label may also be given as its index); () = integers.
        metrics: names of the reported metrics (keys of ``metrics.GLUE_METRICS``).
        split_aliases: other names of this task's splits (``validation_matched`` → ``dev_matched``).
        skip_short_rows: skip rows with too few columns (QQP's malformed lines, as transformers' QqpProcessor).
        hf_columns: ``(text, text_pair, label)`` column names of the hub dataset, when they differ from the TSV's.
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
    text_pair_column: str | int | None = None
    label_names: tuple[str, ...] = ()
    metrics: tuple[str, ...] = CLASSIFICATION_METRICS
    split_aliases: dict[str, str] = field(default_factory=dict)
    skip_short_rows: bool = False
    hf_columns: tuple[str, str | None, str] | None = None

    @property
    def is_pair(self) -> bool:
        """Whether examples are sentence pairs."""
        return self.text_pair_column is not None

    def canonical_split(self, split: str) -> str:
        """``split`` under this task's name for it (general aliases, then the task's own)."""
        key = canonical_split(split)
        return self.split_aliases.get(key, key)

    def load_split(self, split: str, **kwargs: Any) -> Any:
        """Load ``split``: a :class:`~analog_peft.tasks.glue.ClassificationData` or a list of
        :class:`~analog_peft.tasks.e2e.E2EExample` (see ``glue.load_split`` / ``e2e.load_e2e``)."""
        if self.kind != "generation":
            from .glue import load_split

            return load_split(self, split, **kwargs)
        from .e2e import load_e2e

        return load_e2e(split, **kwargs)

    def compute_metrics(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Task metrics (:attr:`metrics`); ``references`` are int labels (classification), floats (regression)
        or lists of strings (E2E)."""
        from . import metrics

        if self.kind == "generation":
            return metrics.e2e_metrics(list(predictions), [list(r) for r in references])
        return metrics.glue_metrics(self.metrics, predictions, references)


#: the task of the user's own files (its labels, kind and metrics come from the data options)
CUSTOM = "custom"

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
        hf_columns=("sentence", None, "label"),
    ),
    "mrpc": TaskSpec(
        name="mrpc",
        kind="classification",
        num_labels=2,
        metric="f1",
        aliases=("glue/mrpc", "glue-mrpc"),
        subdir="glue/MRPC",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="#1 String",
        text_pair_column="#2 String",
        label_column="Quality",
        metrics=("accuracy", "f1"),
        hf_name=("glue", "mrpc"),
        hf_columns=("sentence1", "sentence2", "label"),
    ),
    "stsb": TaskSpec(
        name="stsb",
        kind="regression",
        num_labels=1,
        metric="pearson",
        aliases=("sts-b", "sts_b", "glue/stsb", "glue-stsb"),
        subdir="glue/STS-B",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="score",
        metrics=REGRESSION_METRICS,
        hf_name=("glue", "stsb"),
        hf_columns=("sentence1", "sentence2", "label"),
    ),
    "qqp": TaskSpec(
        name="qqp",
        kind="classification",
        num_labels=2,
        metric="f1",
        aliases=("glue/qqp", "glue-qqp"),
        subdir="glue/QQP",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="question1",
        text_pair_column="question2",
        label_column="is_duplicate",
        metrics=("accuracy", "f1"),
        skip_short_rows=True,
        hf_name=("glue", "qqp"),
        hf_columns=("question1", "question2", "label"),
    ),
    "mnli": TaskSpec(
        name="mnli",
        kind="classification",
        num_labels=3,
        metric="accuracy",
        aliases=("multinli", "glue/mnli", "glue-mnli"),
        subdir="glue/MNLI",
        split_files={"train": "train.tsv", "dev_matched": "dev_matched.tsv",
                     "dev_mismatched": "dev_mismatched.tsv"},
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="gold_label",
        label_names=("entailment", "neutral", "contradiction"),
        metrics=("accuracy",),
        split_aliases={"validation_matched": "dev_matched", "validation_mismatched": "dev_mismatched"},
        hf_name=("glue", "mnli"),
        hf_columns=("premise", "hypothesis", "label"),
    ),
    "qnli": TaskSpec(
        name="qnli",
        kind="classification",
        num_labels=2,
        metric="accuracy",
        aliases=("glue/qnli", "glue-qnli"),
        subdir="glue/QNLI",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="question",
        text_pair_column="sentence",
        label_column="label",
        label_names=("entailment", "not_entailment"),
        metrics=("accuracy",),
        hf_name=("glue", "qnli"),
        hf_columns=("question", "sentence", "label"),
    ),
    "rte": TaskSpec(
        name="rte",
        kind="classification",
        num_labels=2,
        metric="accuracy",
        aliases=("glue/rte", "glue-rte"),
        subdir="glue/RTE",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="label",
        label_names=("entailment", "not_entailment"),
        metrics=("accuracy",),
        hf_name=("glue", "rte"),
    ),
    "wnli": TaskSpec(
        name="wnli",
        kind="classification",
        num_labels=2,
        metric="accuracy",
        aliases=("glue/wnli", "glue-wnli"),
        subdir="glue/WNLI",
        split_files={"train": "train.tsv", "dev": "dev.tsv"},
        text_column="sentence1",
        text_pair_column="sentence2",
        label_column="label",
        metrics=("accuracy",),
        hf_name=("glue", "wnli"),
    ),
    CUSTOM: TaskSpec(
        name=CUSTOM,
        kind="classification",
        num_labels=0,
        metric="accuracy",
        aliases=("own", "user", "files"),
        text_column="text",
        label_column="label",
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
