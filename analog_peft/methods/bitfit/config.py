"""BitFit configuration (Ben Zaken et al. 2022; docs/methods.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError


@dataclass
class BitFitConfig(AdapterConfig):
    """BitFit: train only bias terms. On analog layers the bias is the digital ``analog_module.bias``.

    Args:
        bias_scope: **[choice]** ``"all"`` (every bias of the base, LayerNorm included, as the paper) or
            ``"linear"`` (only the biases of linear layers, digital or analog).
    """

    method: ClassVar[str] = "bitfit"
    uses_targets: ClassVar[bool] = False

    bias_scope: str = "all"

    def validate(self) -> None:
        super().validate()
        if self.bias_scope not in ("all", "linear"):
            raise AdapterError(f"bitfit: bias_scope must be 'all' or 'linear', got {self.bias_scope!r}")
