"""An analog layer's weights as PEFT's tuner layers expect them: a digital view, a snapshot, a write-back.

aihwkit's ``AnalogLinear`` keeps its weights on tiles (``layer.weight`` is ``None``). PEFT's layers read
``base_layer.weight`` to size, initialise, merge and (DoRA) normalise their adapters, so the bridge lends
them a *digital view*: a plain ``nn.Linear`` holding the layer's weight ``[out, in]`` and digital bias.

* ``logical`` weights: ``get_weights()``, the tile weights with their mapping / out-scales applied — what
  ``set_weights()`` programs (merges read and write these; ``set_weights`` re-maps the merged weight with
  the preset's own scaling, as converting the merged digital layer would).
* ``effective`` weights: the layer's exact inference map at the tiles' current state (drift compensation
  included; :meth:`analog_peft.analog_linear.AnalogLinear.effective_weight`, cached), for DoRA's norms.
* ``shape``: a weightless view on the meta device (LoHa/LoKr only read the shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from aihwkit.nn import AnalogLinear
from torch import Tensor, nn

SOURCES = ("logical", "effective", "shape")


def is_analog(module: nn.Module) -> bool:
    """True for aihwkit analog linear layers (``analog_peft.analog_linear.AnalogLinear`` included)."""
    return isinstance(module, AnalogLinear)


def tile_device(layer: AnalogLinear) -> torch.device:
    """The device the layer's tiles live on."""
    tile = next(iter(layer.analog_tiles()))
    return tile.tile.weight.device


def has_bias(layer: AnalogLinear) -> bool:
    return _bias_parameter(layer) is not None or _analog_bias(layer)


def _analog_bias(layer: AnalogLinear) -> bool:
    return any(getattr(tile, "analog_bias", False) for tile in layer.analog_tiles())


def read(layer: AnalogLinear, source: str = "logical") -> tuple[Tensor, Tensor | None]:
    """``(W [out, in], b)``: fresh tensors on the tiles' device (see the module docstring for ``source``)."""
    device = tile_device(layer)
    if source == "effective" and hasattr(layer, "effective_weight") and not _analog_bias(layer):
        weight, bias = layer.effective_weight()
        return weight.detach().clone(), None if bias is None else bias.detach().clone()
    weight, bias = layer.get_weights()
    weight = weight.detach().to(device).clone()  # aihwkit returns the tile's own storage on CPU
    return weight, None if bias is None else bias.detach().to(device).clone()


def digital_view(layer: AnalogLinear, source: str = "logical") -> nn.Linear:
    """A frozen ``nn.Linear`` equal to ``layer`` (``source="shape"``: weightless, on the meta device)."""
    if source not in SOURCES:
        raise ValueError(f"unknown weight source {source!r}; choose one of {SOURCES}")
    bias = has_bias(layer)
    view = nn.Linear(layer.in_features, layer.out_features, bias=bias, device="meta")
    if source == "shape":
        return view.requires_grad_(False)
    weight, b = read(layer, source)
    view.weight = nn.Parameter(weight, requires_grad=False)
    view.bias = None if b is None else nn.Parameter(b, requires_grad=False)
    return view


@torch.no_grad()
def write(layer: AnalogLinear, weight: Tensor, bias: Tensor | None) -> None:
    """Program ``(W, b)`` as the layer's target weights (aihwkit re-maps them with the preset's scaling)."""
    if not torch.isfinite(weight).all() or (bias is not None and not torch.isfinite(bias).all()):
        name = getattr(layer, "converted_name", type(layer).__name__)
        raise ValueError(f"{name}: the merged weights hold NaN/inf; the adapter is broken: retrain or re-save it")
    layer.set_weights(weight.detach(), None if bias is None else bias.detach())


@dataclass
class TileState:
    """Everything ``set_weights`` changes on a layer: per tile weights and scales, and the digital bias."""

    tiles: list[tuple[Tensor, Tensor | None, Tensor | None]]
    bias: Tensor | None


@torch.no_grad()
def snapshot(layer: AnalogLinear) -> TileState:
    """A copy of the layer's tile state, restorable bit for bit with :func:`restore`."""
    tiles = []
    for tile in layer.analog_tiles():
        scales, out = tile.get_mapping_scales(), tile.get_learned_out_scales()
        tiles.append((tile.tile.weight.detach().clone(), None if scales is None else scales.detach().clone(),
                      None if out is None else out.detach().clone()))
    bias = _bias_parameter(layer)
    return TileState(tiles, None if bias is None else bias.detach().clone())


@torch.no_grad()
def restore(layer: AnalogLinear, state: TileState) -> None:
    """Put back the tile state of :func:`snapshot` (weights, mapping and out-scales, digital bias)."""
    for tile, (weight, scales, out) in zip(layer.analog_tiles(), state.tiles, strict=True):
        tile.tile.weight.data.copy_(weight)
        tile.set_mapping_scales(None if scales is None else scales.clone())
        if out is not None:
            tile.set_learned_out_scales(out)
    bias = _bias_parameter(layer)
    if bias is not None and state.bias is not None:
        bias.data = state.bias.clone().to(bias.device)


def _bias_parameter(layer: AnalogLinear) -> Tensor | None:
    bias = getattr(layer.analog_module, "bias", None)
    return bias if isinstance(bias, Tensor) else None
