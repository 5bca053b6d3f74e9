"""Run-directory file handling: atomic writes, the one-writer lock, and typed reads of the results tables."""

from __future__ import annotations

import fcntl
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

LOCK_FILE = ".lock"

#: column types of the engine's tables; every text column stays text ("nan", "NA", "None" are names)
RESULT_DTYPES: dict[str, str] = {
    "run": "str", "method": "str", "task": "str", "device": "str", "deployment": "str", "chip": "int64",
    "t": "float64", "t_label": "str", "metric": "str", "value": "float64",
}
#: the only cells read as missing: empty numeric cells (how ``to_csv`` writes NaN)
NA_VALUES: dict[str, list[str]] = {"t": ["", "nan", "NaN"], "value": ["", "nan", "NaN"]}


class RunDirLocked(RuntimeError):
    """Another process is writing the run directory."""


def read_results_csv(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a results / chip / digital CSV with fixed column types (method names are never read as NaN)."""
    header = pd.read_csv(path, nrows=0, dtype=str, keep_default_na=False).columns
    dtypes = {c: RESULT_DTYPES.get(c, "str") for c in header}
    na = {c: v for c, v in NA_VALUES.items() if c in header}
    return pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=na)


def atomic_write(path: str | os.PathLike[str], data: str | bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it into place.

    A reader (or a later run) sees the old file or the new one, never a partial one; on any error the
    temporary file is removed and the old file is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        binary = isinstance(data, bytes)
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def lock_run_dir(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``out/.lock`` (creating ``out``) for the body; refuse if it is held.

    The holder writes its pid, host and start time into the file, so a refused writer can name it. The
    lock is released when the file is closed, also when the holder is killed.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    f = path.open("a+", encoding="utf-8")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "a process that has not written its pid yet"
        f.close()
        raise RunDirLocked(
            f"{out} is being written by another Monte Carlo run ({holder}); wait for it to finish or use "
            "another --out directory"
        ) from None
    try:
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        f.flush()
        yield path
    finally:
        f.close()
