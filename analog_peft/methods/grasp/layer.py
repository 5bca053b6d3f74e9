"""The GRASP layer: grouped input scale and shift, foldable into the weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from analog_peft.methods.errors import AdapterError
from analog_peft.methods.grasp.config import GraspConfig
from analog_peft.methods.layer import AdapterLayer, layer_generator
from analog_peft.methods.targets import Target


def check_groups(k: int, targets: list[Target], method: str) -> None:
    """``1 <= k <= D`` for every target, else an error naming the narrowest layer and the fix."""
    from analog_peft.methods.modules import features

    narrow = min(targets, key=lambda t: features(t.module)[0])
    d = features(narrow.module)[0]
    if k > d:
        raise AdapterError(
            f"{method}: k={k} groups exceeds the input width D={d} of {narrow.name!r}; choose k <= {d} "
            "(K << D, typically 8-128) or exclude that layer with exclude_modules"
        )


def guard(gamma: Tensor, eps: float) -> Tensor:
    """``sign(γ)·max(|γ|, eps)`` with sign(0) = +1: a scale that can never reach zero."""
    floor = torch.where(gamma < 0, -eps, eps).to(gamma.dtype)
    return torch.where(gamma.abs() < eps, floor, gamma)


class GraspLayer(AdapterLayer):
    """``y = W((x − β[g]) / γ[g]) + b`` with ``γ = 1``, ``β = 0`` at initialisation (``2K`` parameters)."""

    def __init__(self, target: Target, config: GraspConfig) -> None:
        super().__init__(target, config)
        k, d = config.k, self.in_features
        perm = torch.randperm(d, generator=layer_generator(config.seed, target.name))
        self.register_buffer("group_index", (perm % k).to(self._device))
        self.gamma = nn.Parameter(torch.ones(k, **self.factory()))
        self.beta = nn.Parameter(torch.zeros(k, **self.factory()))
        self.k = k
        self.gamma_eps = config.gamma_eps

    def modulation(self) -> tuple[Tensor, Tensor]:
        """The ``(γ, β)`` used in this forward (the parameters; StochGRASP samples)."""
        return self.gamma, self.beta

    def deployed_modulation(self) -> tuple[Tensor, Tensor]:
        """The ``(γ, β)`` used when merging / deploying."""
        return self.gamma, self.beta

    def adapted_forward(self, x: Tensor) -> Tensor:
        gamma, beta = self.modulation()
        idx = self.group_index
        x = (x - beta[idx].to(x.dtype)) / guard(gamma, self.gamma_eps)[idx].to(x.dtype)
        return self.base_layer(x)

    def merged_weight(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``W' = W·diag(1/γ̃)``, ``b' = b − W'β̃`` (γ̃, β̃ expanded to the D input dimensions)."""
        gamma, beta = self.deployed_modulation()
        g = guard(gamma.detach(), self.gamma_eps)[self.group_index].to(weight)
        b = beta.detach()[self.group_index].to(weight)
        new_w = weight / g[None, :]
        shift = new_w @ b
        if bias is None and not bool(torch.any(b != 0)):
            return new_w, None
        return new_w, (torch.zeros_like(shift) if bias is None else bias) - shift

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, k={self.k}"
