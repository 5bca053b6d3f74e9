"""Full fine-tuning configuration (docs/methods.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig


@dataclass
class FullConfig(AdapterConfig):
    """Full fine-tuning: every parameter of the base trains and is saved (expensive; a digital reference).

    ``disabled()`` swaps in a copy of the pretrained weights kept at attach time (one extra model copy).
    On an analog model the tile weights train directly through aihwkit's autograd.
    """

    method: ClassVar[str] = "full"
    uses_targets: ClassVar[bool] = False
