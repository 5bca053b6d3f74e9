"""Relative Gaussian programming noise ``σ = η · scale(W)`` (Joshi et al., Nat. Commun. 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Generator, Tensor

from device_models import portable
from device_models.base import DeviceModel, DeviceModelError, ProgrammedState, randn
from device_models.registry import register

SCALES = ("layer_max", "column_max", "layer_std")


def noise_scale(weights: Tensor, scale: str) -> Tensor:
    """The reference magnitude σ is relative to: a scalar, or one value per output channel (row)."""
    if scale == "layer_max":
        return weights.abs().max()
    if scale == "layer_std":
        return torch.tensor(portable.std(weights), dtype=weights.dtype, device=weights.device)
    if weights.dim() < 2:
        return weights.abs().max()
    return weights.abs().flatten(1).amax(dim=1).reshape(-1, *([1] * (weights.dim() - 1)))


@register
@dataclass
class Gaussian(DeviceModel):
    r"""Additive Gaussian programming noise relative to the weights' scale, without drift: Joshi et al.,
    "Accurate deep neural network inference using computational phase-change memory", Nat. Commun. 11,
    2473 (2020) (https://www.nature.com/articles/s41467-020-16108-9).

    ``w_prog = w + η · s(W) · ξ`` with ``s`` the layer's max|W| (``"layer_max"``), each output channel's
    max|W| (``"column_max"``: per row of the ``[out, in]`` matrix, as a column-wise remapped crossbar) or
    the layer's standard deviation (``"layer_std"``). ``read`` returns the programmed weights (the same
    tensor, do not modify it in place) at every ``t >= 0``. Meant for noise-level sweeps.
    """

    name = "gaussian"
    reference = "Joshi et al., Nat. Commun. 11, 2473 (2020)"

    eta: float = 0.01
    scale: str = "layer_max"

    def __post_init__(self) -> None:
        if not isinstance(self.eta, (int, float)) or not math.isfinite(self.eta) or self.eta < 0:
            raise DeviceModelError(
                f"gaussian: eta is the noise std relative to the weight scale and must be a finite number "
                f">= 0 (e.g. eta=0.02 for 2 %), got {self.eta!r}; use eta=0 for noise-free programming"
            )
        if self.scale not in SCALES:
            raise DeviceModelError(f"gaussian: unknown scale {self.scale!r}; choose one of {list(SCALES)}")

    @torch.no_grad()
    def program(self, weights: Tensor, generator: Generator) -> ProgrammedState:
        weights = weights.detach()
        if self.eta == 0:
            w_prog = weights.clone()
        else:
            w_prog = weights + self.eta * noise_scale(weights, self.scale) * randn(weights, generator)
        return ProgrammedState(target=weights, tensors={"w_prog": w_prog})

    def read(self, state: ProgrammedState, t: float, generator: Generator) -> Tensor:
        self.check_time(t)
        return state.tensors["w_prog"]
