"""Reading and writing adapter folders: ``adapter_config.json`` + ``adapter.safetensors`` (never pickle).

``adapter_config.json`` records ``tensor_sha256``, a checksum of the saved tensors (:func:`tensor_checksum`);
:func:`verify_tensors` refuses non-finite tensors and a checksum mismatch on load. Adapters saved before the
checksum existed load with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import warnings
from collections.abc import Mapping
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
CHECKSUM_KEY = "tensor_sha256"


def tensor_checksum(tensors: Mapping[str, Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and raw bytes, in sorted name order."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(f"{key}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def canonical_safetensors(path: Path) -> None:
    """Make a saved file byte-reproducible: safetensors writes its ``__metadata__`` keys in a random
    order (a Rust ``HashMap``). Rewrite the header of a safetensors file in place with the keys sorted.

    The header keeps its length (same keys, other order), so the tensor offsets stay valid; a header this
    function cannot reproduce exactly (other JSON spelling) is left as it is.
    """
    with path.open("r+b") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
        header = json.loads(raw)
        meta = header.get("__metadata__")
        if not isinstance(meta, dict):
            return
        canonical = {"__metadata__": dict(sorted(meta.items())), **{k: v for k, v in header.items()
                                                                     if k != "__metadata__"}}
        text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False).encode()
        body = raw.rstrip(b" ")
        if len(text) != len(body) or json.loads(text) != header or not body.startswith(b'{"__metadata__":'):
            return
        f.seek(8)
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_adapter(
    directory: str | Path, config: dict[str, Any], tensors: dict[str, Tensor], fmt: str = FORMAT
) -> Path:
    """Write the config JSON (with the tensors' checksum) and the tensors; returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    checksum = tensor_checksum(payload)
    metadata = {"format": fmt, "method": config["method"], CHECKSUM_KEY: checksum}
    save_file(payload, str(directory / WEIGHTS_NAME), metadata=metadata)
    canonical_safetensors(directory / WEIGHTS_NAME)
    data = {**config, "format": fmt, CHECKSUM_KEY: checksum}
    (directory / CONFIG_NAME).write_text(json.dumps(data, indent=2, sort_keys=True))
    return directory


def verify_tensors(
    tensors: Mapping[str, Tensor], config: Mapping[str, Any], directory: str | Path,
    nan_sentinels: tuple[str, ...] = (),
) -> None:
    """Refuse non-finite tensors and a checksum mismatch (:class:`AdapterFileError`); warn if unchecksummed.

    Tensors named ``*.<s>`` for ``s`` in ``nan_sentinels`` may be all-NaN (a "not derived yet" marker).
    """
    for key in sorted(tensors):
        t = tensors[key]
        if key.rpartition(".")[2] in nan_sentinels and bool(torch.isnan(t).all()):
            continue
        if t.is_floating_point() or t.is_complex():
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise AdapterFileError(
                    f"adapter {directory}: tensor {key!r} holds {bad} non-finite value(s) (NaN/inf) of "
                    f"{t.numel()}; the adapter is unusable: retrain it (e.g. with a lower lr) or re-save a good one"
                )
    saved = config.get(CHECKSUM_KEY)
    if saved is None:
        warnings.warn(
            f"adapter {directory} has no tensor checksum (saved by an older analog_peft) and loads unverified; "
            "re-save it to add one", UserWarning, stacklevel=3,
        )
        return
    if saved != tensor_checksum(tensors):
        raise AdapterFileError(
            f"adapter {directory}: tensor checksum mismatch — the file was modified or corrupted; "
            "re-save or retrain it"
        )


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
