"""Performance machinery of the device models: reusable buffers, chunking, reuse of a chip's draws.

Nothing here changes a result: the chunking only bounds each element-wise chain's scratch so that it
stays in a core's cache, and a :class:`Workspace` only saves the page faults of allocating fresh
multi-MB tensors on every call. The physics (``device_models.conductance`` and the presets) and the
portable math (``device_models.portable``) call these helpers; nothing else should need them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Elements per chunk of an element-wise chain: its scratch buffers stay in a core's cache, and the
#: Python/dispatch overhead (a few µs per op) stays small. Chunking never changes a result here.
CHUNK = 131072


def chunks(n: int, device: torch.device) -> list[slice]:
    """Slices covering ``range(n)`` of at most :data:`CHUNK` elements (one slice on GPUs)."""
    if device.type != "cpu" or n <= CHUNK:
        return [slice(0, n)]
    return [slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]


class Workspace:
    """Reusable scratch buffers (allocating fresh multi-MB tensors costs page faults on every call).

    ``get(name, shape, like, dtype)`` returns a contiguous view of buffer ``name``, grown on demand; its
    contents are undefined. Use one workspace per thread.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(
        self, name: str, shape: torch.Size | tuple[int, ...], like: Tensor, dtype: torch.dtype | None = None
    ) -> Tensor:
        n = math.prod(shape)
        dtype = dtype or like.dtype
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < n or buf.dtype != dtype or buf.device != like.device:
            buf = torch.empty(n, dtype=dtype, device=like.device)
            self._buffers[name] = buf
        return buf[:n].view(shape)

    def clear(self) -> None:
        """Free every buffer."""
        self._buffers.clear()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._buffers.values())


def reusable(old: Tensor | None, like: Tensor) -> Tensor:
    """``old`` if it can hold a tensor shaped like ``like`` (a previous chip's draws), else a new tensor."""
    if old is not None and old.shape == like.shape and old.dtype == like.dtype and old.device == like.device:
        return old
    return torch.empty_like(like)
