"""JSONL run log: one JSON object per line (``{"event": "train" | "eval" | "start" | ..., ...}``)."""

from __future__ import annotations

import json
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
