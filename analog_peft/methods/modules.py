"""Uniform access to the layers adapters wrap: ``nn.Linear``, GPT-2 ``Conv1D`` and aihwkit ``AnalogLinear``.

Weights are always returned as ``[out_features, in_features]``. Digital weights can be rewritten (for
merging); analog layers are only read (their tiles are left untouched).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from analog_peft.methods.errors import AdapterError


def is_analog(module: nn.Module) -> bool:
    """True for aihwkit analog layers (their weights live on analog tiles)."""
    return hasattr(module, "analog_module") or type(module).__module__.startswith("aihwkit")


def is_conv1d(module: nn.Module) -> bool:
    """True for Hugging Face's ``Conv1D`` (GPT-2), whose weight is stored as ``[in, out]``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "nx")


def is_linear_like(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or is_conv1d(module)


def features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a linear-like layer."""
    if is_conv1d(module):
        return int(module.nx), int(module.nf)
    if isinstance(module, nn.Linear):
        return int(module.in_features), int(module.out_features)
    raise AdapterError(f"{type(module).__name__} is not a linear layer (nn.Linear, Conv1D or AnalogLinear)")


def module_device_dtype(module: nn.Module) -> tuple[torch.device, torch.dtype]:
    for p in module.parameters():
        if p.is_floating_point() and p.dim() > 0:
            return p.device, p.dtype
    return torch.device("cpu"), torch.get_default_dtype()


def bias_parameter(module: nn.Module) -> nn.Parameter | None:
    """The (digital) bias parameter: ``module.bias``, or ``module.analog_module.bias`` on analog layers."""
    if is_analog(module):
        bias = getattr(getattr(module, "analog_module", None), "bias", None)
        return bias if isinstance(bias, nn.Parameter) else None
    bias = getattr(module, "bias", None)
    return bias if isinstance(bias, nn.Parameter) else None


def read_weight(module: nn.Module) -> tuple[Tensor, Tensor | None]:
    """A detached copy of ``(W [out, in], b)``; works on digital and analog layers."""
    if is_analog(module):
        weight, bias = module.get_weights()
        return weight.detach().clone(), None if bias is None else bias.detach().clone()
    weight = module.weight.detach()
    weight = weight.t() if is_conv1d(module) else weight
    bias = bias_parameter(module)
    return weight.clone(), None if bias is None else bias.detach().clone()


def check_digital(module: nn.Module, name: str, what: str) -> None:
    if is_analog(module):
        raise AdapterError(
            f"cannot {what} layer {name!r}: it is an analog layer ({type(module).__name__}) whose weights live "
            "on analog tiles. Merge before conversion: load the adapter onto the digital base model, call "
            "merge_adapter(), then convert the merged model to analog."
        )


@torch.no_grad()
def write_weight(module: nn.Module, name: str, weight: Tensor, bias: Tensor | None) -> None:
    """Overwrite a digital layer's weight (``[out, in]``) and bias; a bias is created if needed."""
    check_digital(module, name, "merge an adapter into")
    target = weight.t() if is_conv1d(module) else weight
    module.weight.copy_(target.to(module.weight.dtype))
    if bias is None:
        return
    current = getattr(module, "bias", None)
    if isinstance(current, nn.Parameter):
        current.copy_(bias.to(current.dtype))
    else:
        module.bias = nn.Parameter(bias.to(module.weight.dtype), requires_grad=module.weight.requires_grad)
