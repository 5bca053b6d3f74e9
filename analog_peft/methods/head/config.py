"""Head-only configuration: no adapter, the task head trains."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError


@dataclass
class HeadConfig(AdapterConfig):
    """Train only the task head: ``classifier`` / ``score``, and the pooler when the head pools through it
    (:func:`analog_peft.heads.head_module_names`); ``head_modules`` names other modules instead."""

    method: ClassVar[str] = "head"
    uses_targets: ClassVar[bool] = False

    def validate(self) -> None:
        super().validate()
        if self.train_head is False:
            raise AdapterError("head: train_head=False would train nothing; use train_head=None or True")
