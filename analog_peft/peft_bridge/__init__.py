"""Hugging Face PEFT on analog bases: PEFT's tuners wrap aihwkit ``AnalogLinear`` layers.

>>> import analog_peft.peft_bridge  # registers the bridge (or call register())
>>> convert(model, "mapped"); peft_model = get_peft_model(model, LoraConfig(target_modules=["query", "value"]))

Supported on analog layers: LoRA (rsLoRA, DoRA), (IA)^3, VeRA, LoHa, LoKr; prompt-based methods (prompt
tuning, prefix tuning, P-tuning) touch no layer and work as they are. ``merge_and_unload`` folds the
adapter into the tiles' target weights (the fused deployment); ``unmerge_adapter`` restores them exactly.
"""

from analog_peft.peft_bridge.dispatch import LORA_CUSTOM_MODULES, register, registered, unregister
from analog_peft.peft_bridge.layer import (
    AnalogIA3Linear,
    AnalogLoHaLinear,
    AnalogLoKrLinear,
    AnalogLoraLinear,
    AnalogTunerMixin,
    AnalogVeraLinear,
)

register()

__all__ = [
    "LORA_CUSTOM_MODULES",
    "AnalogIA3Linear",
    "AnalogLoHaLinear",
    "AnalogLoKrLinear",
    "AnalogLoraLinear",
    "AnalogTunerMixin",
    "AnalogVeraLinear",
    "register",
    "registered",
    "unregister",
]
