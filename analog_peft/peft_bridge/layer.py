"""PEFT tuner layers around an aihwkit ``AnalogLinear``: PEFT's own layers, lent a digital view of the tiles.

Each class subclasses PEFT's layer (``lora.Linear``, ``ia3.Linear``, ``vera.Linear``, ``loha.Linear``,
``lokr.Linear``) through :class:`AnalogTunerMixin`, so the adapter's parameters, forward, state-dict keys
and saved files are exactly PEFT's. Only the places where PEFT reads or writes ``base_layer.weight`` are
redirected (:meth:`AnalogTunerMixin.digital_base`):

* forward: the base output is always the analog layer's (``self.base_layer(x)``; noise, periphery and
  chips included); the adapter branch is digital.
* ``update_layer`` (sizes, device, inits that read the weight, DoRA's magnitude) sees the tiles' weights;
  an init that rewrites the base weight (PiSSA, OLoRA, ...) is programmed back onto the tiles.
* ``merge`` folds the adapter into the tiles' target weights (``get_weights`` → PEFT's own merge math →
  ``set_weights``, which re-maps with the preset's scaling): the fused deployment, programmed afterwards.
  ``unmerge`` restores the tiles bit for bit from a snapshot taken before the first merge.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from peft.tuners.ia3 import layer as ia3
from peft.tuners.loha import layer as loha
from peft.tuners.lokr import layer as lokr
from peft.tuners.lora import layer as lora
from peft.tuners.lora.variants import DoraLinearVariant
from peft.tuners.tuners_utils import check_adapters_to_merge
from peft.tuners.vera import layer as vera
from torch import nn

from analog_peft.peft_bridge import weights
from analog_peft.peft_bridge.weights import is_analog


class AnalogTunerMixin:
    """Shared by every analog tuner layer: the digital view of the tiles, analog merge and exact unmerge."""

    _modules: dict[str, nn.Module]
    merged_adapters: list[str]

    def analog_layer(self) -> nn.Module:
        """The wrapped aihwkit layer (never the digital view)."""
        outer = self.__dict__.get("_analog_base")
        return outer if outer is not None else self._modules["base_layer"]

    @contextmanager
    def digital_base(self, source: str = "logical", write_back: bool = False) -> Iterator[nn.Linear]:
        """Within the block, ``self.base_layer`` is a digital ``nn.Linear`` view of the tiles (see
        :mod:`analog_peft.peft_bridge.weights` for ``source``). ``write_back``: weights the block changed are
        programmed onto the tiles as the new targets. Nested calls reuse the outer view."""
        current = self._modules["base_layer"]
        if self.__dict__.get("_analog_base") is not None:
            yield current
            return
        view = weights.digital_view(current, source)
        before = (view.weight.detach().clone(), None if view.bias is None else view.bias.detach().clone()) \
            if write_back else None
        self.__dict__["_analog_base"] = current
        self._modules["base_layer"] = view
        try:
            yield view
        finally:
            self._modules["base_layer"] = current
            self.__dict__["_analog_base"] = None
        if before is not None and _changed(view, before):
            weights.write(current, view.weight, view.bias)

    def _in_view(self) -> bool:
        return self.__dict__.get("_analog_base") is not None

    def update_layer(self, adapter_name: str, *args: Any, **kwargs: Any) -> None:
        with self.digital_base("logical", write_back=True):
            super().update_layer(adapter_name, *args, **kwargs)  # type: ignore[misc]

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Fold the adapters into the tiles' target weights (PEFT's merge math on the digital view)."""
        if self._in_view():
            return super().merge(safe_merge=safe_merge, adapter_names=adapter_names)  # type: ignore[misc]
        if not check_adapters_to_merge(self, adapter_names):
            return None
        if not self.merged_adapters:
            self.__dict__["_unmerged_tiles"] = weights.snapshot(self._modules["base_layer"])
        with self.digital_base("logical", write_back=True):
            super().merge(safe_merge=safe_merge, adapter_names=adapter_names)  # type: ignore[misc]
        return None

    def unmerge(self) -> None:
        """Restore the tiles exactly as they were before the first merge."""
        if self._in_view():
            return super().unmerge()  # type: ignore[misc]
        if not self.merged_adapters:
            warnings.warn("Already unmerged. Nothing to do.", stacklevel=2)
            return None
        weights.restore(self._modules["base_layer"], self.__dict__.pop("_unmerged_tiles"))
        for name in self.merged_adapters:
            getattr(self, "_caches", {}).pop(f"{name}-weight_norm", None)  # DoRA's norm cached by merge
        self.merged_adapters.clear()
        return None


def _changed(view: nn.Linear, before: tuple[torch.Tensor, torch.Tensor | None]) -> bool:
    weight, bias = before
    if view.weight.shape != weight.shape or not torch.equal(view.weight.detach(), weight):
        return True
    return bias is not None and (view.bias is None or not torch.equal(view.bias.detach(), bias))


class AnalogDoraVariant(DoraLinearVariant):
    """DoRA whose column norms ‖W + ΔW‖ come from the tiles' current (effective) weights."""

    @staticmethod
    def forward(module: AnalogLoraLinear, active_adapter: str, x: torch.Tensor, result: torch.Tensor,
                **kwargs: Any) -> torch.Tensor:
        with module.digital_base("effective"):
            return DoraLinearVariant.forward(module, active_adapter, x, result, **kwargs)


class AnalogLoraLinear(AnalogTunerMixin, lora.Linear):
    """PEFT LoRA (rsLoRA and DoRA included) around an analog layer."""

    @property
    def lora_variants(self) -> dict[tuple[str, ...], Any]:
        return {(): None, ("use_dora",): AnalogDoraVariant}

    def resolve_lora_variant(self, *, config: Any, **kwargs: Any) -> Any:
        try:
            return super().resolve_lora_variant(config=config, **kwargs)
        except ValueError as exc:
            if "unsupported variant" not in str(exc):
                raise
            raise ValueError(
                f"LoRA variant {str(exc).rpartition(':')[2].strip()} is not supported on analog layers; use plain "
                "LoRA, rsLoRA (use_rslora=True) or DoRA (use_dora=True), or keep that layer digital"
            ) from None


class AnalogIA3Linear(AnalogTunerMixin, ia3.Linear):
    """PEFT (IA)^3 around an analog layer (feed-forward layers scale the input, the others the output)."""


class AnalogVeraLinear(AnalogTunerMixin, vera.Linear):
    """PEFT VeRA around an analog layer (the shared random projections stay digital)."""


class _LycorisShapes:
    """LoHa/LoKr read only the base weight's shape when building their delta."""

    def get_delta_weight(self, adapter_name: str, **kwargs: Any) -> torch.Tensor:
        with self.digital_base("shape"):  # type: ignore[attr-defined]
            return super().get_delta_weight(adapter_name, **kwargs)  # type: ignore[misc]


class AnalogLoHaLinear(AnalogTunerMixin, _LycorisShapes, loha.Linear):
    """PEFT LoHa around an analog layer."""


class AnalogLoKrLinear(AnalogTunerMixin, _LycorisShapes, lokr.Linear):
    """PEFT LoKr around an analog layer."""


__all__ = ["AnalogDoraVariant", "AnalogIA3Linear", "AnalogLoHaLinear", "AnalogLoKrLinear", "AnalogLoraLinear",
           "AnalogTunerMixin", "AnalogVeraLinear", "is_analog"]
