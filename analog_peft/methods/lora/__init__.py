"""LoRA: a low-rank digital side branch ``(α/r)·B·A`` next to each adapted layer."""

from analog_peft.methods.lora.config import LoraConfig
from analog_peft.methods.lora.layer import LoraLayer
from analog_peft.methods.lora.model import LoraModel

__all__ = ["LoraConfig", "LoraLayer", "LoraModel"]
