"""The user's own data: CSV, TSV, JSON Lines or Parquet files with one or two text columns and integer,
string or float labels, read with pandas (``--task custom --train-file a.csv --eval-file b.csv``).

Why pandas and not Hugging Face ``datasets``: pandas is already pinned; ``datasets`` 5.2.0 adds five packages
(``pyarrow`` alone 170 MB of the 181 MB), ~0.45 s to every import after transformers, and copies each file
into ``~/.cache/huggingface/datasets`` as Arrow, for the same pandas/pyarrow CSV parsing underneath. Hub
datasets (``hf_dataset = "name"``) still load through ``datasets`` when it is installed.

Labels of a classification task are class indices ``0..K-1`` or names: without ``labels = [...]`` the
label set is inferred from the file the task is resolved on (the training file in ``train``, the eval file
in ``montecarlo``): integers → ``num_labels = max + 1``, anything else → the sorted distinct names. A
training run writes the resolved ``labels`` / ``num_labels`` into its ``train_config.toml``, so the
Monte Carlo engine reading that file (``--data-config``) maps them identically.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .glue import ClassificationData, Column, DataError, RawSplit, _number, check_present, read_split
from .registry import CUSTOM, REGRESSION_METRICS, TaskSpec, get_task

TASK_TYPES = ("classification", "regression")
#: file suffix → format read by :func:`read_table`
FORMATS = {".csv": "CSV", ".tsv": "TSV", ".jsonl": "JSON Lines", ".ndjson": "JSON Lines", ".json": "JSON",
           ".parquet": "Parquet"}
_ROLES = ("text_column", "text_pair_column", "label_column")


@dataclass(frozen=True)
class DataOptions:
    """Which data a run uses: a registered task, or ``custom`` files with their columns and label set.

    Field names are those of :class:`~analog_peft.training.TrainConfig` (and of the Monte Carlo config), so
    one TOML file describes the data for ``train`` and ``montecarlo`` alike. Empty strings / 0 mean "the
    task's default" (columns ``text`` and ``label`` for ``custom``).
    """

    task: str = CUSTOM
    train_file: str = ""
    eval_file: str = ""
    text_column: str = ""
    text_pair_column: str = ""
    label_column: str = ""
    task_type: str = ""
    labels: tuple[str, ...] = ()
    num_labels: int = 0
    data_name: str = ""

    def columns(self) -> dict[str, Column | None]:
        """Column overrides for :func:`~analog_peft.tasks.glue.load_split` (digit strings are indices)."""
        return {role: _column(getattr(self, role)) for role in _ROLES}


def _column(value: str) -> Column | None:
    if not value:
        return None
    return int(value) if value.isdigit() else value


def check_options(opts: DataOptions) -> None:
    """Cheap checks (no file read): the task type, the label set, files for ``custom``."""
    spec = get_task(opts.task)
    if opts.task_type and opts.task_type not in TASK_TYPES:
        raise DataError(f"task_type must be one of {TASK_TYPES}, got {opts.task_type!r}")
    if spec.name != CUSTOM:
        _check_registered(opts, spec)
        return
    if opts.num_labels < 0 or opts.num_labels == 1 and opts.task_type != "regression":
        raise DataError(f"num_labels must be >= 2 for classification (0 = infer), got {opts.num_labels}")
    if len(set(opts.labels)) != len(opts.labels) or not all(isinstance(x, str) and x for x in opts.labels):
        raise DataError(f"labels must be distinct, non-empty names, got {list(opts.labels)}")
    if opts.labels and opts.num_labels and opts.num_labels != len(opts.labels):
        raise DataError(f"labels has {len(opts.labels)} names but num_labels = {opts.num_labels}; drop num_labels")
    if opts.task_type == "regression" and (opts.labels or opts.num_labels > 1):
        raise DataError("a regression task has no label set: drop labels / num_labels, or set task_type = "
                        "\"classification\"")


def _check_registered(opts: DataOptions, spec: TaskSpec) -> None:
    """A registered task fixes its type and label set."""
    if opts.task_type and opts.task_type != spec.kind:
        raise DataError(f"task {spec.name!r} is a {spec.kind} task; drop task_type or use task = \"custom\" "
                        "with your own files")
    if opts.labels and tuple(opts.labels) != spec.label_names:
        raise DataError(f"task {spec.name!r} has a fixed label set; labels is for task = \"custom\" (drop it)")
    if opts.num_labels and opts.num_labels != spec.num_labels:
        raise DataError(f"task {spec.name!r} has {spec.num_labels} labels, not num_labels = {opts.num_labels}; "
                        "drop num_labels")


# -------------------------------------------------------------------------------- reading


def read_frame(path: Path) -> Any:
    """The file as a pandas DataFrame (CSV/TSV cells as strings, JSON values as they are)."""
    import pandas as pd

    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); point to a file with a header and examples")
    if fmt in ("CSV", "TSV"):
        return pd.read_csv(path, sep="," if fmt == "CSV" else "\t", dtype=str, keep_default_na=False,
                           encoding="utf-8-sig")
    if fmt == "Parquet":
        return _read_parquet(path)
    lines = fmt == "JSON Lines" or not path.read_text(encoding="utf-8-sig").lstrip().startswith("[")
    try:
        return pd.read_json(path, lines=lines, dtype=False, encoding="utf-8-sig")
    except ValueError as exc:
        raise DataError(f"{path}: not valid {'JSON Lines' if lines else 'JSON'} ({exc}); write one JSON object "
                        "per line") from None


def _read_parquet(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (not installed): pip install pyarrow, or "
                        "convert the file to CSV / JSON Lines") from None


def _name(frame: Any, column: Column, role: str, path: Path) -> str:
    columns = [str(c) for c in frame.columns]
    if isinstance(column, int):
        if not 0 <= column < len(columns):
            raise DataError(f"{path}: no column {column} (it has {len(columns)}: {columns}); set {role} "
                            f"(--{role.replace('_', '-')}) to one of them")
        return columns[column]
    if column not in columns:
        raise DataError(f"{path}: no column {column!r}; its columns are {columns}: set {role} "
                        f"(--{role.replace('_', '-')}) to one of them")
    return column


def _text(value: Any) -> str:
    if value is None or isinstance(value, float) and math.isnan(value):
        return ""
    return str(value).strip()


def read_table(path: str | os.PathLike[str], text_column: Column, text_pair_column: Column | None,
               label_column: Column) -> RawSplit:
    """Texts, optional second texts and unparsed labels of a CSV / TSV / JSON Lines / Parquet file."""
    path = Path(path)
    frame = read_frame(path)
    names = [_name(frame, c, role, path) if c is not None else None
             for c, role in zip((text_column, text_pair_column, label_column), _ROLES, strict=True)]
    fmt = FORMATS[path.suffix.lower()]
    first = 2 if fmt in ("CSV", "TSV") else 1
    lines = None if fmt in ("Parquet", "JSON") else list(range(first, first + len(frame)))
    texts = [_text(v) for v in frame[names[0]].tolist()]
    pairs = None if names[1] is None else [_text(v) for v in frame[names[1]].tolist()]
    return RawSplit(texts, pairs, frame[names[2]].tolist(), str(path), lines)


# -------------------------------------------------------------------------------- the task of the files


def infer_label_set(raw: RawSplit) -> tuple[tuple[str, ...], int]:
    """``(label names, num_labels)`` of classification labels: integers → ``((), max + 1)``, names → sorted."""
    check_present(raw)
    numbers = [_number(v) for v in raw.labels]
    if all(n is not None and math.isfinite(n) for n in numbers):
        for i, n in enumerate(numbers):
            if not float(n).is_integer():
                raise DataError(f"{raw.where(i)}: label {raw.labels[i]!r} is not an integer, and the task is a "
                                "classification task; for real-valued labels set task_type = \"regression\" "
                                "(--task-type regression)")
            if n < 0:
                raise DataError(f"{raw.where(i)}: label {raw.labels[i]!r} is negative; integer labels are "
                                "class indices 0..K-1 (or give the names with labels = [...])")
        return (), int(max(numbers)) + 1
    names = tuple(sorted({_text(v) for v in raw.labels}))
    return names, len(names)


def _custom_columns(opts: DataOptions) -> dict[str, Any]:
    """``TaskSpec`` keyword arguments naming the custom task and its columns (``text`` / ``label`` by default)."""
    template, cols = get_task(CUSTOM), opts.columns()
    text, label = cols["text_column"], cols["label_column"]
    return dict(name=CUSTOM, text_column=template.text_column if text is None else text,
                text_pair_column=cols["text_pair_column"],
                label_column=template.label_column if label is None else label)


def custom_task(opts: DataOptions, sample: RawSplit | None = None) -> TaskSpec:
    """The :class:`TaskSpec` of the user's files: kind, label set (``opts``, else inferred from ``sample``),
    metrics (classification: accuracy primary, F1 of class 1 too when binary; regression: Pearson primary)."""
    common = _custom_columns(opts)
    if opts.task_type == "regression":
        return TaskSpec(kind="regression", num_labels=1, metric="pearson", metrics=REGRESSION_METRICS, **common)
    names, n = tuple(opts.labels), opts.num_labels or len(opts.labels)
    if not n:
        if sample is None:
            raise DataError("the label set of custom data is unknown: set labels = [...] or num_labels")
        names, n = infer_label_set(sample)
    if n < 2:
        raise DataError(f"classification needs at least 2 labels, the data has {n} ({list(names)}); set labels = "
                        "[...] with every label, or task_type = \"regression\"")
    metrics = ("accuracy", "f1", "matthews_correlation") if n == 2 else ("accuracy", "matthews_correlation")
    return TaskSpec(kind="classification", num_labels=n, metric="accuracy", label_names=names, metrics=metrics,
                    **common)


def resolve_task(opts: DataOptions, split: str = "train", *, data_dir: str | None = None,
                 hf_name: Any = None) -> TaskSpec:
    """The task of ``opts``: a registered one, or ``custom`` with its label set read from ``split``'s file
    (``train_file`` for ``split="train"``, else ``eval_file``) when ``opts`` does not give it."""
    check_options(opts)
    spec = get_task(opts.task)
    if spec.name != CUSTOM:
        return spec
    file = opts.train_file if split == "train" else opts.eval_file
    if not file and not hf_name:
        which = "train_file (--train-file)" if split == "train" else "eval_file (--eval-file)"
        raise DataError(f"task 'custom' reads your own files: set {which} to a CSV, TSV, JSON Lines or Parquet "
                        "file (or hf_dataset to a hub dataset)")
    needs_sample = opts.task_type != "regression" and not (opts.labels or opts.num_labels)
    if not needs_sample:
        return custom_task(opts)
    unparsed = TaskSpec(kind="classification", num_labels=0, metric="accuracy", **_custom_columns(opts))
    raw = read_split(unparsed, split, data_dir, hf_name=hf_name, path=file or None)
    return custom_task(opts, raw)


def data_name(opts: DataOptions, spec: TaskSpec) -> str:
    """The data's display name: ``data_name``, else a custom file's stem, else the task name."""
    if opts.data_name:
        return opts.data_name
    if spec.name == CUSTOM and (opts.eval_file or opts.train_file):
        return Path(opts.eval_file or opts.train_file).stem
    return spec.name


def data_record(name: str, spec: TaskSpec, splits: dict[str, ClassificationData]) -> dict[str, Any]:
    """What a summary / manifest records about the data: name, task, label set, files with sha256."""
    return {
        "name": name,
        "task": spec.name,
        "task_type": spec.kind,
        "num_labels": spec.num_labels,
        "labels": list(spec.label_names),
        "files": {role: {"source": _absolute(d.source), "sha256": d.sha256 or None, "split": d.split,
                         "examples": len(d)} for role, d in splits.items()},
    }


def _absolute(source: str) -> str:
    """A file source as an absolute path (hub sources unchanged)."""
    return str(Path(source).resolve()) if Path(source).is_file() else source
