"""GLUE-style sentence(-pair) classification and regression: the GLUE release's TSV files, the user's own
files (:mod:`analog_peft.tasks.userdata`) or a Hugging Face hub dataset, with validated labels."""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .paths import missing_file_error, resolve_data_dir
from .registry import CUSTOM, TaskSpec, get_task

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

Column = str | int


class DataError(ValueError):
    """Unusable data: a missing column, a bad label, an empty file (one line naming the fix)."""


@dataclass
class ClassificationData:
    """Texts (and second texts of pair tasks), labels (ints, or floats for regression) of one split."""

    texts: list[str]
    labels: list[int] | list[float]
    task: str = ""
    split: str = ""
    source: str = ""
    text_pairs: list[str] | None = None
    sha256: str = ""  # of the source file ("" for hub data)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels.")
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError(f"{len(self.texts)} texts but {len(self.text_pairs)} second texts.")

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class RawSplit:
    """What a reader returns: texts, optional second texts and unparsed labels, with where each row is."""

    texts: list[str]
    pairs: list[str] | None
    labels: list[Any]
    source: str
    lines: list[int] | None = None  # file line of each row (None: rows are counted, e.g. Parquet or the hub)
    sha256: str = ""

    def where(self, i: int) -> str:
        """``file:line`` (or ``source row i``) of row ``i``, for error messages."""
        return f"{self.source}:{self.lines[i]}" if self.lines is not None else f"{self.source} row {i}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    if not spec.split_files:
        raise ValueError(f"task {spec.name!r} reads your own files: set train_file / eval_file "
                         "(--train-file / --eval-file) to CSV, TSV, JSON Lines or Parquet files")
    split = spec.canonical_split(split)
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


def _column_index(column: Column, header: list[str] | None, path: Path) -> int:
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


def read_glue_tsv(
    path: str | os.PathLike[str],
    text_column: Column,
    label_column: Column,
    has_header: bool,
    text_pair_column: Column | None = None,
    skip_short_rows: bool = False,
) -> RawSplit:
    """Read a GLUE-release TSV: tab-separated, no quote handling (``csv.QUOTE_NONE``, as GLUE's own readers:
    MNLI/QNLI/RTE/STS-B sentences contain quotes), a leading byte-order mark dropped (MRPC)."""
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as f:
        rows = [(n, row) for n, row in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1) if row]
    header = [h.strip() for h in rows.pop(0)[1]] if has_header and rows else None
    if not rows:
        raise DataError(f"{path}: the split is empty (no data rows).")
    cols = [text_column, label_column] + ([] if text_pair_column is None else [text_pair_column])
    idx = [_column_index(c, header, path) for c in cols]
    texts, pairs, labels, lines = [], [], [], []
    for line_no, row in rows:
        if max(idx) >= len(row):
            if skip_short_rows:
                continue
            raise ValueError(
                f"{path}:{line_no}: row has {len(row)} columns, but text/label columns are "
                f"{text_column!r}/{label_column!r}. Check text_column=/label_column=/has_header=."
            )
        texts.append(row[idx[0]].strip())
        labels.append(row[idx[1]])
        if text_pair_column is not None:
            pairs.append(row[idx[2]].strip())
        lines.append(line_no)
    return RawSplit(texts, pairs if text_pair_column is not None else None, labels, str(path), lines)


def read_tsv(
    path: str | os.PathLike[str],
    text_column: Column,
    label_column: Column,
    has_header: bool,
    num_labels: int,
) -> tuple[list[str], list[int]]:
    """Read texts and validated integer labels from a GLUE-format TSV file (see :func:`read_glue_tsv`)."""
    raw = read_glue_tsv(path, text_column, label_column, has_header)
    spec = TaskSpec(name="tsv", kind="classification", num_labels=num_labels, metric="accuracy")
    return raw.texts, parse_labels(raw, spec)


# -------------------------------------------------------------------------------- labels


def _number(value: Any) -> float | None:
    """``value`` as a float (numbers, numeric strings), else None."""
    if isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _score(value: Any, spec: TaskSpec, where: str) -> float:
    number = _number(value)
    if number is None or not np.isfinite(number):
        raise DataError(f"{where}: label {value!r} is not a finite number, and task {spec.name!r} is a regression "
                        "task; is label_column the score column?")
    return number


def _class(value: Any, spec: TaskSpec, where: str) -> int:
    text = str(value).strip()
    if text in spec.label_names:
        return spec.label_names.index(text)
    number = _number(value)
    if number is None:
        if spec.label_names:
            raise DataError(f"{where}: label {value!r} is not in the label set {list(spec.label_names)}; fix the "
                            "row, or list every label with labels = [...] (--labels)")
        raise DataError(f"{where}: label {value!r} is not an integer; is label_column= the label column?")
    if not number.is_integer():
        raise DataError(f"{where}: label {value!r} is not an integer, and task {spec.name!r} is a classification "
                        "task; for real-valued labels set task_type = \"regression\" (--task-type regression)")
    label, n = int(number), len(spec.label_names) or spec.num_labels
    if not 0 <= label < n:
        raise DataError(f"{where}: label {label} is outside 0..{n - 1} (num_labels={n}); fix the row or set "
                        "num_labels (--num-labels)")
    return label


def _missing(value: Any) -> bool:
    return value is None or isinstance(value, float) and np.isnan(value) or str(value).strip() == ""


def check_present(raw: RawSplit) -> None:
    """Refuse rows without a label."""
    for i, value in enumerate(raw.labels):
        if _missing(value):
            raise DataError(f"{raw.where(i)}: the label is missing; fill it in or drop the row")


def parse_labels(raw: RawSplit, spec: TaskSpec) -> list[int] | list[float]:
    """Validated labels: ints in ``0..num_labels-1`` (names of ``spec.label_names`` or indices), or floats."""
    check_present(raw)
    parse = _score if spec.kind == "regression" else _class
    return [parse(v, spec, raw.where(i)) for i, v in enumerate(raw.labels)]


def check_texts(raw: RawSplit, column: Column) -> None:
    """Refuse an empty split and a text column with no text in any row."""
    if not raw.texts:
        raise DataError(f"{raw.source}: the split is empty (no data rows); point to a file with examples")
    if not any(raw.texts):
        raise DataError(f"{raw.source}: text column {column!r} is empty in every row; set text_column "
                        "(--text-column) to the column holding the text")


# -------------------------------------------------------------------------------- sources


def _load_hf(
    spec: TaskSpec,
    split: str,
    hf_name: str | Sequence[str] | bool,
    columns: tuple[Column, Column | None, Column],
) -> RawSplit:
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
    hf_split = {"dev": "validation", "dev_matched": "validation_matched",
                "dev_mismatched": "validation_mismatched"}.get(split, split)
    ds = datasets.load_dataset(*args, split=hf_split)
    cols = list(ds.column_names)
    names = [c if isinstance(c, str) or c is None else cols[c] for c in columns]
    for c in names:
        if c is not None and c not in cols:
            raise DataError(f"Hugging Face dataset {args} has no column {c!r}; columns: {cols}. "
                            "Set text_column / label_column.")
    pairs = None if names[1] is None else [str(t).strip() for t in ds[names[1]]]
    return RawSplit([str(t).strip() for t in ds[names[0]]], pairs, list(ds[names[2]]),
                    f"hf:{'/'.join(args)}:{hf_split}")


def _read_file(spec: TaskSpec, path: Path, columns: tuple[Column, Column | None, Column],
               has_header: bool) -> RawSplit:
    """A GLUE task's ``.tsv`` with the GLUE reader; any other file (and every file of ``custom``) with pandas."""
    if spec.name != CUSTOM and path.suffix.lower() == ".tsv":
        raw = read_glue_tsv(path, columns[0], columns[2], has_header, columns[1], spec.skip_short_rows)
    else:
        from .userdata import read_table

        raw = read_table(path, *columns)
    raw.sha256 = file_sha256(path)
    return raw


def read_split(
    task: str | TaskSpec,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    text_column: Column | None = None,
    label_column: Column | None = None,
    has_header: bool | None = None,
    hf_name: str | Sequence[str] | bool | None = None,
    text_pair_column: Column | None = None,
    path: str | os.PathLike[str] | None = None,
) -> RawSplit:
    """The rows of one split with unparsed labels (see :func:`load_split` for the sources)."""
    spec = get_task(task)
    if spec.kind == "generation":
        raise ValueError(f"Task {spec.name!r} is a {spec.kind} task; use its own loader (e.g. e2e.load_e2e).")
    split = spec.canonical_split(split)
    overridden = any(c is not None for c in (text_column, label_column, text_pair_column))
    if hf_name is True and spec.hf_columns and not overridden:
        columns: tuple[Column, Column | None, Column] = spec.hf_columns
    else:
        columns = (spec.text_column if text_column is None else text_column,
                   spec.text_pair_column if text_pair_column is None else text_pair_column,
                   spec.label_column if label_column is None else label_column)
    if hf_name:
        raw = _load_hf(spec, split, hf_name, columns)
    else:
        header = spec.has_header if has_header is None else has_header
        if has_header is None and any(isinstance(c, str) for c in columns):
            header = True
        file = Path(path).expanduser() if path else find_split_file(spec, split, data_dir)
        if path and not file.is_file():
            raise FileNotFoundError(f"data file {file} does not exist; check the path given as train_file / "
                                    "eval_file (--train-file / --eval-file)")
        raw = _read_file(spec, file, columns, header)
    check_texts(raw, columns[0])
    return raw


def load_split(
    task: str | TaskSpec,
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    max_examples: int | None = None,
    seed: int = 0,
    *,
    text_column: Column | None = None,
    label_column: Column | None = None,
    has_header: bool | None = None,
    hf_name: str | Sequence[str] | bool | None = None,
    text_pair_column: Column | None = None,
    path: str | os.PathLike[str] | None = None,
) -> ClassificationData:
    """Load one split of a classification or regression task.

    Sources, in order: ``hf_name`` (``True`` for the task's default hub dataset, or a name /
    ``(path, config)``; needs ``pip install datasets`` and internet); ``path``, a file of the user's (CSV, TSV,
    JSON Lines, Parquet; a GLUE task's ``.tsv`` is read in the GLUE layout); else the task's TSV file found by
    :func:`find_split_file` under ``data_dir`` / ``$ANALOG_PEFT_DATA`` / ``<project>/../shared/datasets``.
    ``data_dir`` may also be any GLUE-format folder with ``{train,dev}.tsv``; ``text_column`` /
    ``text_pair_column`` / ``label_column`` (names for files with a header, 0-based indices otherwise) and
    ``has_header`` override the task's layout.

    Subsampling (``max_examples``) is deterministic: the same ``seed`` picks the same rows, see
    :func:`subsample_indices`. Labels must be integers in ``0..num_labels-1`` or names of the task's label
    set (classification), or numbers (regression); problems raise ``ValueError`` (bad column/label, empty
    split) or ``FileNotFoundError`` (with the paths tried) before any training.
    """
    spec = get_task(task)
    raw = read_split(spec, split, data_dir, text_column=text_column, label_column=label_column,
                     has_header=has_header, hf_name=hf_name, text_pair_column=text_pair_column, path=path)
    labels = parse_labels(raw, spec)
    keep = subsample_indices(len(raw.texts), max_examples, seed)
    return ClassificationData(
        texts=[raw.texts[i] for i in keep],
        labels=[labels[i] for i in keep],
        task=spec.name,
        split=spec.canonical_split(split),
        source=raw.source,
        text_pairs=None if raw.pairs is None else [raw.pairs[i] for i in keep],
        sha256=raw.sha256,
    )
