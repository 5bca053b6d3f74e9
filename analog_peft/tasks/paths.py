"""Where the task layer looks for data files."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV_VAR = "ANALOG_PEFT_DATA"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_DIR = PROJECT_ROOT.parent / "shared" / "datasets"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``data_dir``, else ``$ANALOG_PEFT_DATA``, else ``<project>/../shared/datasets``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR


def missing_file_error(what: str, looked_at: list[Path]) -> FileNotFoundError:
    """Build a ``FileNotFoundError`` that lists the paths tried and how to point elsewhere."""
    tried = "\n".join(f"  - {p}" for p in looked_at)
    return FileNotFoundError(
        f"Could not find {what}. Looked at:\n{tried}\n"
        f"Point to your copy with the `data_dir=` argument or the {DATA_ENV_VAR} environment variable "
        f"(default: {DEFAULT_DATA_DIR})."
    )
