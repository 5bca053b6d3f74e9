"""JSONL run log: one JSON object per line (``{"event": "train" | "eval" | "start" | ..., ...}``)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class JsonlLogger:
    """Appends events to ``path`` (flushed per line, so a killed run keeps its log)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, event: str, **fields: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with self.path.open("a") as f:
            f.write(json.dumps(record, sort_keys=False, default=float) + "\n")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All events of a run log."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def drop_after(path: str | Path, step: int) -> int:
    """Remove the events logged after checkpoint ``step`` (those with a larger ``step``); return how many.

    A resumed run redoes the steps after its checkpoint and logs them again, so each train / eval event
    stays in the log exactly once. A line cut short by a kill is dropped too. The log is replaced atomically.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += bool(line.strip())
            continue
        late = isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] > step
        if late:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(f"{line}\n" for line in kept))
        os.replace(tmp, path)
    return dropped
