"""Teach PEFT's tuners the analog layer: which layer class wraps an ``AnalogLinear``, and where it lives.

:func:`register` (called when :mod:`analog_peft.peft_bridge` is imported; idempotent) uses PEFT's extension
points where they exist and thin wrappers where they do not:

* LoRA — PEFT's custom-module mapping, ``LoraConfig._register_custom_module(LORA_CUSTOM_MODULES)``, applied
  to every ``LoraConfig`` that targets an analog layer (a mapping the user registered for it wins).
* LoHa / LoKr — their ``layers_mapping`` tables gain ``AnalogLinear`` → the analog layer, first.
* (IA)^3 / VeRA — their ``_create_new_module`` dispatchers are wrapped: an analog target gets the analog
  layer, everything else goes to PEFT unchanged.
* Placement — PEFT's ``_replace_module`` moves new adapter weights to ``child.weight.device``, which an
  aihwkit layer does not have (``weight`` is ``None``: the ``AttributeError`` this bridge fixes); for an
  analog child the adapter goes to the tiles' device instead. Digital children are PEFT's own path.

:func:`unregister` puts every patched attribute back.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from aihwkit.nn import AnalogLinear
from peft.tuners.ia3 import IA3Model
from peft.tuners.loha import LoHaModel
from peft.tuners.lokr import LoKrModel
from peft.tuners.lora import LoraModel
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.tuners.vera import VeraModel
from torch import nn

from analog_peft.peft_bridge.layer import (
    AnalogIA3Linear,
    AnalogLoHaLinear,
    AnalogLoKrLinear,
    AnalogLoraLinear,
    AnalogVeraLinear,
)
from analog_peft.peft_bridge.weights import is_analog, tile_device

#: For ``LoraConfig._register_custom_module`` (PEFT's documented route; :func:`register` applies it for you).
LORA_CUSTOM_MODULES: dict[type[nn.Module], type[nn.Module]] = {AnalogLinear: AnalogLoraLinear}
#: Tuners that run on analog layers (prompt-based methods need no layer support).
TUNERS = (LoraModel, IA3Model, VeraModel, LoHaModel, LoKrModel)

_PATCHES: list[tuple[type, str, Any]] = []  # (class, attribute, original value in its __dict__)


def registered() -> bool:
    return bool(_PATCHES)


def register() -> None:
    """Make ``get_peft_model`` / ``PeftModel.from_pretrained`` handle aihwkit analog layers (idempotent)."""
    if _PATCHES:
        return
    _patch(LoraModel, "_create_new_module", staticmethod(_lora_dispatch(LoraModel._create_new_module)))
    _patch(IA3Model, "_create_new_module", staticmethod(_ia3_dispatch(IA3Model._create_new_module)))
    _patch(VeraModel, "_create_new_module", staticmethod(_vera_dispatch(VeraModel._create_new_module)))
    _patch(LoHaModel, "layers_mapping", {AnalogLinear: AnalogLoHaLinear, **LoHaModel.layers_mapping})
    _patch(LoKrModel, "layers_mapping", {AnalogLinear: AnalogLoKrLinear, **LoKrModel.layers_mapping})
    owners = {next(c for c in tuner.__mro__ if "_replace_module" in c.__dict__) for tuner in TUNERS}
    for owner in sorted(owners, key=lambda c: c.__qualname__):
        _patch(owner, "_replace_module", _placing(owner.__dict__["_replace_module"]))


def unregister() -> None:
    """Undo :func:`register` (tests; PEFT then fails on analog layers again)."""
    while _PATCHES:
        cls, name, original = _PATCHES.pop()
        setattr(cls, name, original)


def _patch(cls: type, name: str, value: Any) -> None:
    _PATCHES.append((cls, name, cls.__dict__[name]))
    setattr(cls, name, value)


def base_of(target: nn.Module) -> nn.Module:
    return target.get_base_layer() if isinstance(target, BaseTunerLayer) else target


def _lora_dispatch(original: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    @functools.wraps(original)
    def create(lora_config: Any, adapter_name: str, target: nn.Module, **kwargs: Any) -> nn.Module:
        custom = lora_config._custom_modules or {}
        if is_analog(base_of(target)):
            lora_config.fan_in_fan_out = False  # an analog layer is nn.Linear-shaped ([out, in]), GPT-2's too
            if not any(issubclass(AnalogLinear, k) or issubclass(k, AnalogLinear) for k in custom):
                lora_config._register_custom_module(LORA_CUSTOM_MODULES)
        return original(lora_config, adapter_name, target, **kwargs)

    return create


def _ia3_dispatch(original: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    @functools.wraps(original)
    def create(ia3_config: Any, adapter_name: str, target: nn.Module, **kwargs: Any) -> nn.Module:
        if not is_analog(base_of(target)):
            return original(ia3_config, adapter_name, target, **kwargs)
        for key in ("loaded_in_8bit", "loaded_in_4bit"):
            kwargs.pop(key, None)
        ia3_config.fan_in_fan_out = False
        return AnalogIA3Linear(target, adapter_name, config=ia3_config, **kwargs)

    return create


def _vera_dispatch(original: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    @functools.wraps(original)
    def create(vera_config: Any, vera_A: Any, vera_B: Any, adapter_name: str, target: nn.Module,
               **kwargs: Any) -> nn.Module:
        if not is_analog(base_of(target)):
            return original(vera_config, vera_A, vera_B, adapter_name, target, **kwargs)
        vera_config.fan_in_fan_out = False
        return AnalogVeraLinear(target, vera_A, vera_B, adapter_name, config=vera_config, **kwargs)

    return create


def _placing(original: Callable[..., None]) -> Callable[..., None]:
    """``_replace_module`` that puts the adapter of an analog child on the tiles' device."""

    @functools.wraps(original)
    def replace(self: Any, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module) -> None:
        base = child.base_layer if hasattr(child, "base_layer") else child
        if not is_analog(base):
            return original(self, parent, child_name, new_module, child)
        setattr(parent, child_name, new_module)
        device, meta = tile_device(base), torch.device("meta")
        for name, module in new_module.named_modules():
            if self.prefix in name and not any(p.device == meta for p in module.parameters()):
                module.to(device)
        return None

    return replace
