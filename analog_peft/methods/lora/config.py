"""LoRA configuration (Hu et al. 2022; docs/methods.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError


@dataclass
class LoraConfig(AdapterConfig):
    """LoRA: ``y = W x + b + (α/r)·B A dropout(x)``, ``r·(d_in + d_out)`` parameters per layer.

    Args:
        r: Rank.
        alpha: Scaling numerator (the branch is scaled by ``alpha / r``).
        dropout: Dropout on the branch input.
        init: **[choice]** ``A`` initialisation: ``"kaiming"`` (uniform, a=√5, as PEFT) or ``"gaussian"``
            (N(0, 1/r)); ``B = 0`` either way, so the model is unchanged at initialisation.
        target_roles: default Q and V (the fused ``c_attn`` on GPT-2).
    """

    method: ClassVar[str] = "lora"
    default_roles: ClassVar[tuple[str, ...]] = ("q", "v")

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    init: str = "kaiming"

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.r, int) or self.r <= 0:
            raise AdapterError(f"lora: rank r must be a positive integer, got {self.r!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise AdapterError(f"lora: dropout must be in [0, 1), got {self.dropout!r}")
        if self.init not in ("kaiming", "gaussian"):
            raise AdapterError(f"lora: init must be 'kaiming' or 'gaussian', got {self.init!r}")
