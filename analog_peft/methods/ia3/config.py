"""(IA)^3 configuration (Liu et al. 2022; docs/methods.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig


@dataclass
class IA3Config(AdapterConfig):
    """(IA)^3: ``l_k ⊙ K``, ``l_v ⊙ V`` and ``l_ff ⊙ act(FFN-up)`` with learned vectors initialised to 1.

    ``d_K + d_V + d_FFN`` parameters per block. The FFN activation is scaled as the input of the FFN down
    projection (as PEFT); on GPT-2's fused ``c_attn`` only the K and V slices of the output are scaled.

    Args:
        feedforward_modules: With explicit ``target_modules``: patterns of the modules whose *input* is
            scaled (the FFN down projections); all other targets have their output scaled.
        target_roles: default K, V and FFN-down.
    """

    method: ClassVar[str] = "ia3"
    default_roles: ClassVar[tuple[str, ...]] = ("k", "v", "ffn_down")

    feedforward_modules: list[str] | None = None
