"""Reading and writing adapter folders: ``adapter_config.json`` + ``adapter.safetensors`` (never pickle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from analog_peft.methods.errors import AdapterFileError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"
FORMAT = "analog_peft.adapter/1"


def write_adapter(directory: str | Path, config: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    """Write the config JSON and the tensors; returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    save_file(payload, str(directory / WEIGHTS_NAME), metadata={"format": FORMAT, "method": config["method"]})
    (directory / CONFIG_NAME).write_text(json.dumps({**config, "format": FORMAT}, indent=2, sort_keys=True))
    return directory


def read_config(directory: str | Path) -> tuple[dict[str, Any], Path]:
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise AdapterFileError(f"{path} not found: an adapter folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterFileError(f"{path} is not valid JSON ({exc}); re-save the adapter") from exc
    if not isinstance(data, dict):
        raise AdapterFileError(f"{path} must hold a JSON object")
    return data, path


def read_tensors(directory: str | Path) -> tuple[dict[str, Tensor], Path]:
    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise AdapterFileError(f"{path} not found: an adapter folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AdapterFileError(
            f"{path} is corrupt or truncated and cannot be read as safetensors ({exc}); re-save the adapter"
        ) from exc
    return tensors, path


@torch.no_grad()
def assign_tensors(expected: dict[str, Tensor], loaded: dict[str, Tensor], source: Path) -> None:
    """Copy ``loaded`` into ``expected`` (in place); any missing/unexpected key or shape → clear error."""
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    if missing or unexpected:
        raise AdapterFileError(
            f"{source} does not match this adapter: missing tensors {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''}, unexpected tensors {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''}. Was it saved from another method or base model?"
        )
    for key, tensor in expected.items():
        value = loaded[key]
        if tensor.shape != value.shape:
            raise AdapterFileError(
                f"{source}: tensor {key!r} has shape {list(value.shape)}, expected {list(tensor.shape)}; "
                "the adapter was made for a differently sized base model or config"
            )
        tensor.copy_(value.to(device=tensor.device, dtype=tensor.dtype))
