"""Shared machinery of the rescaling methods ((IA)^3, PARA): scale a layer's output (or slices) or input."""

from __future__ import annotations

import torch
from torch import Tensor

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.layer import AdapterLayer
from analog_peft.methods.modules import features
from analog_peft.methods.targets import Target, matches

Slices = list[tuple[int, int]]


def scaling_plan(target: Target, roles: tuple[str, ...], input_patterns: list[str]) -> tuple[str, Slices | None]:
    """``(mode, slices)`` for a target: ``"in"`` scales the input (the FFN intermediate activation feeding
    ``ffn_down``, or modules matching ``input_patterns``), ``"out"`` the output; on a fused ``qkv``
    projection only the slices of the requested roles (``q``/``k``/``v``, in Q, K, V order) are scaled."""
    if target.role == "ffn_down" or any(matches(target.name, p) for p in input_patterns):
        return "in", None
    if target.role == "qkv":
        d = features(target.module)[1] // 3
        order = {"q": 0, "k": 1, "v": 2}
        wanted = sorted({order[r] for r in roles if r in order}) or [0, 1, 2]
        return "out", [(i * d, (i + 1) * d) for i in wanted]
    return "out", None


def expand(vector: Tensor, slices: Slices | None, width: int) -> Tensor:
    """Put ``vector`` (``[..., n]``) into the sliced positions of a ``[..., width]`` vector of ones."""
    if slices is None:
        return vector
    pieces, pos, used = [], 0, 0
    for start, stop in slices:
        if start > pos:
            pieces.append(vector.new_ones(*vector.shape[:-1], start - pos))
        pieces.append(vector[..., used : used + stop - start])
        used += stop - start
        pos = stop
    if pos < width:
        pieces.append(vector.new_ones(*vector.shape[:-1], width - pos))
    return torch.cat(pieces, dim=-1)


class ScaleLayer(AdapterLayer):
    """Multiplies the output (``mode="out"``, optionally only ``slices``) or the input (``"in"``) by
    :meth:`scale_vector` (``[n]`` or per-example ``[B, n]``)."""

    def __init__(self, target: Target, config: AdapterConfig, mode: str, slices: Slices | None) -> None:
        super().__init__(target, config)
        self.mode, self.slices = mode, slices
        width = self.in_features if mode == "in" else self.out_features
        self.width = width
        self.scaled = width if slices is None else sum(b - a for a, b in slices)

    def scale_vector(self) -> Tensor:
        raise NotImplementedError

    def _full_scale(self, x: Tensor) -> Tensor:
        scale = expand(self.scale_vector(), self.slices, self.width).to(x.dtype)
        if scale.dim() == 2 and x.dim() >= 3:  # per-example vectors: broadcast over tokens
            scale = scale.reshape(scale.shape[0], *([1] * (x.dim() - 2)), scale.shape[1])
        return scale

    def adapted_forward(self, x: Tensor) -> Tensor:
        if self.mode == "in":
            return self.base_layer(x * self._full_scale(x))
        out = self.base_layer(x)
        return out * self._full_scale(out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mode={self.mode}, scaled={self.scaled}"
