"""The LoRA layer: a digital low-rank branch added to the (digital or analog) base output."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from analog_peft.methods.errors import AdapterError
from analog_peft.methods.layer import AdapterLayer, layer_generator
from analog_peft.methods.lora.config import LoraConfig
from analog_peft.methods.targets import Target


class LoraLayer(AdapterLayer):
    """``base(x) + (α/r)·(dropout(x) Aᵀ) Bᵀ`` with ``A ∈ R^{r×d_in}``, ``B = 0 ∈ R^{d_out×r}``."""

    def __init__(self, target: Target, config: LoraConfig) -> None:
        super().__init__(target, config)
        r = config.r
        if r > min(self.in_features, self.out_features):
            raise AdapterError(
                f"lora: r={r} exceeds min(d_in, d_out)={min(self.in_features, self.out_features)} of "
                f"{target.name!r}; choose a smaller rank"
            )
        gen = layer_generator(config.seed, target.name)
        a = torch.empty(r, self.in_features)
        if config.init == "kaiming":
            bound = 1.0 / math.sqrt(self.in_features)  # kaiming_uniform_(a=sqrt(5)) on a [r, d_in] matrix
            a.uniform_(-bound, bound, generator=gen)
        else:
            a.normal_(0.0, 1.0 / math.sqrt(r), generator=gen)
        self.lora_A = nn.Parameter(a.to(**self.factory()))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, **self.factory()))
        self.scaling = config.alpha / r
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def adapted_forward(self, x: Tensor) -> Tensor:
        branch = (self.dropout(x) @ self.lora_A.t().to(x.dtype)) @ self.lora_B.t().to(x.dtype)
        return self.base_layer(x) + self.scaling * branch

    def merged_weight(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``W' = W + (α/r)·B A``."""
        delta = self.lora_B.detach().to(weight) @ self.lora_A.detach().to(weight)
        return weight + self.scaling * delta, bias
