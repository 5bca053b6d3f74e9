"""A tiny TOML writer for flat/nested tables of str, int, float, bool and lists; :func:`read_file` reads one
with ``tomllib``, naming the file when it is missing or not TOML."""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML (value {value!r}); use str/int/float/bool/list/dict")


def dumps(data: Mapping[str, Any]) -> str:
    """Serialise a mapping: scalars and lists first, then each nested mapping as a ``[table]``.

    ``None`` values are skipped (TOML has no null), so the reader must default them.
    """
    lines: list[str] = []
    _table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _table(data: Mapping[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if v is not None and not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for k, v in scalars.items():
        lines.append(f"{_key(str(k))} = {_value(v)}")
    for k, v in tables.items():
        _table(v, [*path, str(k)], lines)


def read_file(path: str | Path, what: str = "TOML file") -> dict[str, Any]:
    """Parse the TOML file ``path``; a missing path or non-TOML content raises ``ConfigError`` naming it."""
    from analog_peft.training.config import ConfigError

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{what} {path} does not exist; pass the path of a TOML file (e.g. a run's train_config.toml)")
    if not path.is_file():
        raise ConfigError(f"{what} {path} is not a file; pass the path of a TOML file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{what} {path} is not a TOML file ({exc}); write TrainConfig fields as `key = value` lines"
        ) from exc
