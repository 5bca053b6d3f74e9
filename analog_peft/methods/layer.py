"""Base class of every adapter layer: wraps one linear-like layer (digital or analog) PEFT-style."""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analog_peft.chip_stack import stack_of, stacked_linear
from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError
from analog_peft.methods.modules import features, module_device_dtype, read_weight, write_weight
from analog_peft.methods.targets import Target


def layer_generator(seed: int, name: str) -> torch.Generator:
    """A CPU generator seeded by (config seed, layer name): the same layer gets the same draws anywhere."""
    gen = torch.Generator()
    gen.manual_seed((int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1))
    return gen


class AdapterLayer(nn.Module):
    """Wraps ``base_layer`` (kept as a child, untouched) and adds the method's computation around it.

    Subclasses implement :meth:`adapted_forward` and, when the method can be folded into the weights,
    :meth:`merged_weight`. Parameters and persistent buffers outside ``base_layer`` are the adapter's
    state: they are trained and saved.
    """

    def __init__(self, target: Target, config: AdapterConfig) -> None:
        super().__init__()
        self.base_layer = target.module
        self.target_name = target.name
        self.role = target.role
        self.in_features, self.out_features = features(target.module)
        self.adapter_enabled = True
        self._device, self._dtype = module_device_dtype(target.module)

    def factory(self) -> dict:
        """``device``/``dtype`` keywords for the adapter's own tensors."""
        return {"device": self._device, "dtype": self._dtype}

    def forward(self, x: Tensor) -> Tensor:
        if not self.adapter_enabled:
            return self.base_layer(x)
        stack = stack_of(self)
        if stack is not None and not (self.training or torch.is_grad_enabled()):  # chip-batched, folded
            return stacked_linear(x, *stack)
        folded = self.folded_map()
        if folded is not None:
            return F.linear(x, *folded)
        return self.adapted_forward(x)

    # -- inference fast path: the adapter folded into each chip's effective weights ---------------------
    def foldable_now(self) -> bool:
        """Whether this forward equals ``F.linear(x, *merged_weight(W, b))`` (stochastic layers: only at a
        fixed modulation). Methods without :meth:`merged_weight` never fold."""
        return type(self).merged_weight is not AdapterLayer.merged_weight

    def fold_sources(self) -> list[Tensor]:
        """Every tensor the folded map depends on besides the tiles (the adapter's parameters and buffers)."""
        return [t for n, t in (*self.named_parameters(), *self.named_buffers()) if not n.startswith("base_layer.")]

    def folded_map(self) -> tuple[Tensor, Tensor | None] | None:
        """The folded ``(W, b)`` when the base is an analog layer on its exact fast path in inference, else None."""
        from analog_peft.analog_linear import AnalogLinear

        base = self.base_layer
        if self.training or torch.is_grad_enabled() or not isinstance(base, AnalogLinear):
            return None
        if not (self.foldable_now() and base.fast_path_supported()):
            return None
        return base.effective_weight(fold=(self.merged_weight, self.fold_sources()))

    def adapted_forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def merged_weight(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(W', b')`` with the adapter folded in (``W`` is ``[out, in]``; ``b`` may be None)."""
        raise AdapterError(f"{type(self).__name__} cannot be merged into the weights")

    @torch.no_grad()
    def merge(self) -> nn.Module:
        """Fold the adapter into the digital base layer and return that layer (to replace this wrapper)."""
        from analog_peft.methods.modules import check_digital

        check_digital(self.base_layer, self.target_name, f"merge {type(self).__name__} into")
        weight, bias = read_weight(self.base_layer)
        new_w, new_b = self.merged_weight(weight.double(), None if bias is None else bias.double())
        write_weight(self.base_layer, self.target_name, new_w, new_b)
        return self.base_layer

    def extra_repr(self) -> str:
        return f"target={self.target_name!r}, in={self.in_features}, out={self.out_features}"
