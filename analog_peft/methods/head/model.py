"""Head-only adapted model: every base weight frozen, the head trained and saved like an adapter."""

from __future__ import annotations

from torch import nn

from analog_peft.methods.errors import AdapterError
from analog_peft.methods.head.config import HeadConfig
from analog_peft.methods.model import AdaptedModel


class HeadModel(AdaptedModel):
    config_class = HeadConfig
    mergeable = True  # nothing to fold: the head is the model's own module

    def base_parameters_to_train(self) -> dict[str, nn.Parameter]:
        if not self._heads:
            raise AdapterError("head: the model has no task head (classifier / score); set head_modules")
        return {}
