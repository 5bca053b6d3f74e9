"""GLUE-style sentence classification: SST-2, CoLA, or any TSV with a text and an integer label column."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .paths import missing_file_error, resolve_data_dir
from .registry import TaskSpec, canonical_split, get_task

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class ClassificationData:
    """Texts and integer labels of one split."""

    texts: list[str]
    labels: list[int]
    task: str = ""
    split: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels.")

    def __len__(self) -> int:
        return len(self.texts)


def subsample_indices(n: int, max_examples: int | None, seed: int = 0) -> list[int]:
    """Indices of a deterministic subsample: the first ``max_examples`` entries of
    ``numpy.random.default_rng(seed).permutation(n)``, sorted back into file order. All of ``range(n)`` when
    ``max_examples`` is None or >= n."""
    if max_examples is None or max_examples >= n:
        return list(range(n))
    if max_examples < 1:
        raise ValueError(f"max_examples must be >= 1 (or None for all), got {max_examples}.")
    return sorted(np.random.default_rng(seed).permutation(n)[:max_examples].tolist())


def find_split_file(spec: TaskSpec, split: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate the file of ``split``. ``data_dir`` may be the data root (holding ``glue/SST-2/...``), a folder
    holding ``SST-2/...``, or the task folder itself (holding ``dev.tsv``)."""
    split = canonical_split(split)
    if split not in spec.split_files:
        raise ValueError(f"Task {spec.name!r} has no split {split!r}; splits: {', '.join(spec.split_files)}.")
    fname = spec.split_files[split]
    root = resolve_data_dir(data_dir)
    task_dir = Path(spec.subdir)
    candidates = [root / fname, root / task_dir.name / fname, root / task_dir / fname]
    for path in candidates:
        if path.is_file():
            return path
    raise missing_file_error(f"the {split!r} split of task {spec.name!r} ({fname})", candidates)


def _column_index(column: str | int, header: list[str] | None, path: Path) -> int:
    if isinstance(column, int):
        return column
    if header is None:
        raise ValueError(
            f"{path}: column {column!r} given by name but the file is read without a header; "
            "pass a 0-based column index or has_header=True."
        )
    if column not in header:
        raise ValueError(
            f"{path}: no column {column!r}; the header has {header}. "
            "Pass text_column=/label_column= with the right names."
        )
    return header.index(column)


def read_tsv(
    path: str | os.PathLike[str],
    text_column: str | int,
    label_column: str | int,
    has_header: bool,
    num_labels: int,
) -> tuple[list[str], list[int]]:
    """Read texts and validated integer labels from a TSV file (no quote handling, as in GLUE)."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]
    header = [h.strip() for h in rows.pop(0)] if has_header and rows else None
    if not rows:
        raise ValueError(f"{path}: the split is empty (no data rows).")
    t_idx = _column_index(text_column, header, path)
    l_idx = _column_index(label_column, header, path)
    first_line = 2 if header is not None else 1
    texts, labels = [], []
    for line_no, row in enumerate(rows, start=first_line):
        if max(t_idx, l_idx) >= len(row):
            raise ValueError(
                f"{path}:{line_no}: row has {len(row)} columns, but text/label columns are "
                f"{text_column!r}/{label_column!r}. Check text_column=/label_column=/has_header=."
            )
        texts.append(row[t_idx].strip())
        labels.append(_parse_label(row[l_idx], num_labels, f"{path}:{line_no}"))
    return texts, labels


def _parse_label(value: object, num_labels: int, where: str) -> int:
    try:
        as_float = float(str(value).strip())
    except ValueError:
        raise ValueError(
            f"{where}: label {value!r} is not an integer; is label_column= the label column?"
        ) from None
    if not as_float.is_integer():
        raise ValueError(f"{where}: label {value!r} is not an integer; is label_column= the label column?")
    label = int(as_float)
    if not 0 <= label < num_labels:
        raise ValueError(f"{where}: label {label} is outside 0..{num_labels - 1} (num_labels={num_labels}).")
    return label


def _load_hf(
    spec: TaskSpec,
    split: str,
    hf_name: str | Sequence[str] | bool,
    text_column: str | int,
    label_column: str | int,
) -> tuple[list[str], list[int], str]:
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            "Loading from the Hugging Face hub needs the `datasets` package: pip install datasets"
        ) from err
    if hf_name is True:
        if spec.hf_name is None:
            raise ValueError(
                f"Task {spec.name!r} has no default Hugging Face dataset; pass hf_name=(path, config)."
            )
        hf_name = spec.hf_name
    args = [hf_name] if isinstance(hf_name, str) else list(hf_name)
    hf_split = {"dev": "validation"}.get(split, split)
    ds = datasets.load_dataset(*args, split=hf_split)
    cols = list(ds.column_names)
    names = [c if isinstance(c, str) else cols[c] for c in (text_column, label_column)]
    for c in names:
        if c not in cols:
            raise ValueError(f"Hugging Face dataset {args} has no column {c!r}; columns: {cols}.")
    labels = [
        _parse_label(v, spec.num_labels, f"{args}[{hf_split}] row {i}") for i, v in enumerate(ds[names[1]])
    ]
    return [str(t) for t in ds[names[0]]], labels, f"hf:{'/'.join(args)}:{hf_split}"


def load_split(
    task: str | TaskSpec,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    max_examples: int | None = None,
    seed: int = 0,
    *,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    has_header: bool | None = None,
    hf_name: str | Sequence[str] | bool | None = None,
) -> ClassificationData:
    """Load one split of a classification task.

    Sources, in order: ``hf_name`` (``True`` for the task's default hub dataset, or a name /
    ``(path, config)``; needs ``pip install datasets`` and internet), else a TSV file found by
    :func:`find_split_file` under ``data_dir`` / ``$ANALOG_PEFT_DATA`` / ``<project>/../shared/datasets``.
    ``data_dir`` may also be any GLUE-format folder with ``{train,dev}.tsv``; ``text_column``/``label_column``
    (names for files with a header, 0-based indices otherwise) and ``has_header`` override the task's layout.

    Subsampling (``max_examples``) is deterministic: the same ``seed`` picks the same rows, see
    :func:`subsample_indices`. Labels must be integers in ``0..num_labels-1``; problems raise ``ValueError``
    (bad column/label, empty split) or ``FileNotFoundError`` (with the paths tried) before any training.
    """
    spec = get_task(task)
    if spec.kind != "classification":
        raise ValueError(f"Task {spec.name!r} is a {spec.kind} task; use its own loader (e.g. e2e.load_e2e).")
    split = canonical_split(split)
    text_col = spec.text_column if text_column is None else text_column
    label_col = spec.label_column if label_column is None else label_column
    if hf_name:
        texts, labels, source = _load_hf(spec, split, hf_name, text_col, label_col)
    else:
        header = spec.has_header if has_header is None else has_header
        if has_header is None and (isinstance(text_col, str) or isinstance(label_col, str)):
            header = True
        path = find_split_file(spec, split, data_dir)
        texts, labels = read_tsv(path, text_col, label_col, header, spec.num_labels)
        source = str(path)
    if not texts:
        raise ValueError(f"The {split!r} split of {spec.name!r} from {source} is empty.")
    keep = subsample_indices(len(texts), max_examples, seed)
    return ClassificationData(
        texts=[texts[i] for i in keep],
        labels=[labels[i] for i in keep],
        task=spec.name,
        split=split,
        source=source,
    )
