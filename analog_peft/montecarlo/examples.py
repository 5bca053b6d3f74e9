"""Per-example scores of a chip Monte Carlo run: storage, loading, and which examples flip across chips.

Every evaluation (method × chip × time, and each method's digital score) keeps, per example of the eval
set, its **prediction** (the arg-max class, ``int16``; the predicted score of a regression, ``float32``)
and its **loss** (cross-entropy of the true class; squared error of a regression; ``float16``). Whether
an example is correct is ``pred == label``; every task metric (accuracy, F1, MCC, Pearson, Spearman, MSE)
can be recomputed from ``pred`` and the labels, on any resample of the examples.

Files of a run directory (all written atomically, see :mod:`.files`):

- ``chips/chip_NNNNN.npz``: ``pred``, ``loss`` of shape ``(methods, times, examples)``, ``methods``,
  ``times``. Written *before* the chip's CSV, so a chip whose CSV exists (a finished chip) has its
  per-example file; a chip killed between the two is redone on resume and both files are rewritten.
- ``digital.npz``: ``pred``, ``loss`` of shape ``(methods, examples)``.
- ``examples.csv``: ``example`` (position in the arrays; the engine's length-sorted order), ``index``
  (row of the evaluation data as loaded, after ``max_examples`` subsampling), ``label``, ``text``
  (``text_pair`` for pair tasks).
- ``per_example.npz``: assembled by ``collect`` from the chips in ``results.csv`` (like ``results.csv``
  from the chip CSVs): ``pred``, ``loss`` of shape ``(methods, chips, times, examples)``, ``chips``,
  ``methods``, ``times``, ``labels``, ``kind``, and ``digital_pred`` / ``digital_loss`` when known.
  It is absent when any chip lacks its per-example file (a run started by an older version): the
  statistics then use the chip-level values only and the report says so.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .files import atomic_write

PER_EXAMPLE_FILE = "per_example.npz"
DIGITAL_FILE = "digital.npz"
EXAMPLES_CSV = "examples.csv"

__all__ = ["PerExample", "assemble", "chip_npz_path", "encode_arrays", "flipping_examples", "load_per_example",
           "write_examples_csv"]


def chip_npz_path(out: Path, chip: int) -> Path:
    """Per-example file of chip ``chip`` (beside its CSV)."""
    return out / "chips" / f"chip_{chip:05d}.npz"


def encode_arrays(**arrays: np.ndarray) -> bytes:
    """``numpy.savez_compressed`` of ``arrays`` as bytes (for :func:`~.files.atomic_write`)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def pred_dtype(regression: bool) -> type:
    """Stored dtype of predictions: classes as ``int16``, regression scores as ``float32``."""
    return np.float32 if regression else np.int16


def write_examples_csv(out: Path, index: Sequence[int], labels: Sequence, texts: Sequence[str],
                       pairs: Sequence[str] | None) -> None:
    """Write ``examples.csv`` (see the module docstring)."""
    table = pd.DataFrame({"example": np.arange(len(labels)), "index": list(index), "label": list(labels),
                          "text": list(texts)})
    if pairs is not None:
        table["text_pair"] = list(pairs)
    atomic_write(out / EXAMPLES_CSV, table.to_csv(index=False))


@dataclass
class PerExample:
    """Per-example predictions and losses of a run (arrays indexed ``[method, chip, time, example]``)."""

    methods: list[str]
    chips: np.ndarray
    times: np.ndarray
    labels: np.ndarray
    pred: np.ndarray
    loss: np.ndarray
    kind: str = "classification"
    digital_pred: np.ndarray | None = None
    digital_loss: np.ndarray | None = None

    @property
    def regression(self) -> bool:
        return self.kind == "regression"

    def method_index(self, method: str) -> int:
        if method not in self.methods:
            raise ValueError(f"no per-example data for method {method!r}; available: {self.methods}")
        return self.methods.index(method)

    def time_index(self, t: float) -> int:
        hits = np.flatnonzero(np.isclose(self.times, float(t)))
        if hits.size == 0:
            raise ValueError(f"no per-example data at t = {t} s; available: {self.times.tolist()}")
        return int(hits[0])

    def correct(self) -> np.ndarray:
        """``pred == label`` as ``uint8`` (classification only)."""
        if self.regression:
            raise ValueError("correctness is defined for classification; a regression has scores (use pred/loss)")
        return (self.pred == self.labels).astype(np.uint8)


def assemble(out: Path, chips: Sequence[int], kind: str, labels: np.ndarray) -> bool:
    """Write ``per_example.npz`` from the chips' files (``True``), or remove it when one is missing."""
    target = out / PER_EXAMPLE_FILE
    paths = [chip_npz_path(out, c) for c in chips]
    if not paths or not all(p.is_file() for p in paths):
        target.unlink(missing_ok=True)
        return False
    parts = [np.load(p) for p in paths]
    arrays = {
        "pred": np.stack([p["pred"] for p in parts], axis=1),
        "loss": np.stack([p["loss"] for p in parts], axis=1),
        "chips": np.asarray(chips, dtype=np.int64),
        "methods": parts[0]["methods"],
        "times": parts[0]["times"],
        "labels": labels,
        "kind": np.asarray(kind),
    }
    if (out / DIGITAL_FILE).is_file():
        digital = np.load(out / DIGITAL_FILE)
        arrays["digital_pred"], arrays["digital_loss"] = digital["pred"], digital["loss"]
    atomic_write(target, encode_arrays(**arrays))
    return True


def load_per_example(run_dir: str | Path) -> PerExample | None:
    """The run's per-example data, or ``None`` when it has none (a run made before they were kept)."""
    path = Path(run_dir) / PER_EXAMPLE_FILE
    if not path.is_file():
        return None
    with np.load(path) as z:
        return PerExample(
            methods=[str(m) for m in z["methods"]], chips=z["chips"], times=z["times"].astype(float),
            labels=z["labels"], pred=z["pred"], loss=z["loss"], kind=str(z["kind"]),
            digital_pred=z.get("digital_pred"),
            digital_loss=z.get("digital_loss"),
        )


def flipping_examples(data: PerExample, method: str, t: float, run_dir: str | Path | None = None) -> pd.DataFrame:
    """Examples whose correctness differs across chips for ``method`` at time ``t``, most unstable first.

    Columns: ``example``, ``label``, ``n_correct`` (chips on which it is right), ``n_chips``,
    ``frac_correct``, ``digital_correct`` (when known) and, with ``run_dir``, the ``text`` from
    ``examples.csv``. Examples right on every chip or wrong on every chip are left out.
    """
    m, k = data.method_index(method), data.time_index(t)
    correct = data.correct()[m, :, k, :]
    n_correct = correct.sum(axis=0)
    n_chips = correct.shape[0]
    flips = np.flatnonzero((n_correct > 0) & (n_correct < n_chips))
    table = pd.DataFrame({"example": flips, "label": data.labels[flips], "n_correct": n_correct[flips],
                          "n_chips": n_chips, "frac_correct": n_correct[flips] / n_chips})
    if data.digital_pred is not None:
        table["digital_correct"] = data.digital_pred[m, flips] == data.labels[flips]
    if run_dir is not None and (Path(run_dir) / EXAMPLES_CSV).is_file():
        texts = pd.read_csv(Path(run_dir) / EXAMPLES_CSV, keep_default_na=False).set_index("example")["text"]
        table["text"] = texts.reindex(flips).to_numpy()
    order = np.argsort(np.abs(table["frac_correct"].to_numpy() - 0.5), kind="stable")
    return table.iloc[order].reset_index(drop=True)
