"""The (IA)^3 layer: one learned rescaling vector (init 1), foldable into the weights."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from analog_peft.methods.ia3.config import IA3Config
from analog_peft.methods.scaling import ScaleLayer, Slices, expand
from analog_peft.methods.targets import Target


class IA3Layer(ScaleLayer):
    """``y = l ⊙ (W x + b)`` (output mode) or ``y = W (l ⊙ x) + b`` (input mode); ``l = 1`` at init."""

    def __init__(self, target: Target, config: IA3Config, mode: str, slices: Slices | None) -> None:
        super().__init__(target, config, mode, slices)
        self.ia3_l = nn.Parameter(torch.ones(self.scaled, **self.factory()))

    def scale_vector(self) -> Tensor:
        return self.ia3_l

    def merged_weight(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Output mode: ``W' = diag(l) W``, ``b' = l ⊙ b``; input mode: ``W' = W diag(l)``."""
        scale = expand(self.ia3_l.detach(), self.slices, self.width).to(weight)
        if self.mode == "in":
            return weight * scale[None, :], bias
        return weight * scale[:, None], None if bias is None else bias * scale
