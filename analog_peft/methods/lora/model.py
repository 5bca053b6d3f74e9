"""LoRA adapted model (mergeable)."""

from __future__ import annotations

from analog_peft.methods.lora.config import LoraConfig
from analog_peft.methods.lora.layer import LoraLayer
from analog_peft.methods.model import AdaptedModel


class LoraModel(AdaptedModel):
    config_class = LoraConfig
    layer_class = LoraLayer
    mergeable = True
