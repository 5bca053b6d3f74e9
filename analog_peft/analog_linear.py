"""``AnalogLinear`` with an exact fast path for inference on tiles with a perfect periphery.

With ``forward.is_perfect`` (the ``ideal`` and ``mapped`` presets) and no input range, an aihwkit layer
computes, tile by tile, ``((x_i @ W_ijᵀ) · mapping_scales_j · α_j) · out_scales_j`` and adds the outputs of
the input splits and the digital bias. That is the linear map ``x @ W_effᵀ + b`` with
``W_eff[j, i] = W_ij · (mapping_scales_j · α_j · out_scales_j)``. aihwkit evaluates it as one matmul per
tile plus four output-sized element-wise passes, splits and concatenations (≈ 1.8× a plain matmul on a
large batch); here ``W_eff`` is assembled once and every eval forward is one ``F.linear``.

``W_eff`` is cached until any tensor it was built from changes (tile weights, α, scales, bias): each
source is remembered with its storage pointer and version counter, and a view of it is kept, so a new
tensor can never reuse the address of one the cache was built from. The fast path is taken only in eval
mode with autograd off (``torch.no_grad``/``inference_mode``) and a perfect periphery; everything else —
training, hardware-aware noise, DAC/ADC, output noise, gradients — runs aihwkit's own forward. Results
equal aihwkit's up to float summation order (``tests/test_analog_linear.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from aihwkit.nn import AnalogLinear as _AihwkitAnalogLinear
from aihwkit.simulator.parameters.enums import AnalogMVType
from aihwkit.simulator.tiles.array import TileModuleArray
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor

from analog_peft.chip_stack import stack_of, stacked_linear

_Source = tuple[Tensor, int, int]  # (view keeping the storage alive, data_ptr, version)
#: ``(transform, tensors)``: ``transform(W_eff, bias) -> (W, bias)`` folded into the cache, rebuilt when a tensor changes
Fold = tuple[Callable[[Tensor, "Tensor | None"], tuple[Tensor, "Tensor | None"]], Sequence[Tensor | None]]


class AnalogLinear(_AihwkitAnalogLinear):
    """aihwkit's ``AnalogLinear`` plus a cached-``W_eff`` inference path for perfect-periphery tiles."""

    def forward(self, x_input: Tensor) -> Tensor:
        if self.training or torch.is_grad_enabled():
            return super().forward(x_input)
        stack = stack_of(self)
        if stack is not None:  # chip-batched (analog_peft.chip_stack)
            return stacked_linear(x_input, *stack)
        grid = self._grid()
        if not all(_perfect(t) for _, t in grid):
            return super().forward(x_input)
        weight, bias = self.effective_weight(grid)
        return F.linear(x_input, weight, bias)

    def train(self, mode: bool = True) -> AnalogLinear:
        if mode:
            self.drop_fast_cache()  # training changes the weights; the cache would only hold memory
        return super().train(mode)

    def drop_fast_cache(self) -> None:
        self.__dict__.pop("_fast_cache", None)

    def fast_path_supported(self) -> bool:
        """Whether inference is exactly ``x @ W_effᵀ + b`` (perfect periphery, no input range).

        Checked at every forward (a few attribute reads per tile): aihwkit allows changing a tile's
        ``rpu_config`` on the fly.
        """
        return all(_perfect(t) for _, t in self._grid())

    @torch.no_grad()
    def effective_weight(self, grid: list[tuple[tuple[slice, slice], TorchInferenceTile]] | None = None,
                         fold: Fold | None = None) -> tuple[Tensor, Tensor | None]:
        """``(W_eff, bias)``: the layer's exact inference map at the tiles' current state (cached).

        ``fold = (transform, tensors)`` caches ``transform(W_eff, bias)`` instead — a periphery adapter folded
        into each chip's effective weights (``AdapterLayer``); it is rebuilt when the tiles or any of
        ``tensors`` (the adapter's state) change, and ``W_eff`` itself is not kept.
        """
        grid = grid if grid is not None else self._grid()
        transform, extra = fold if fold is not None else (None, ())
        sources = [*self._sources(grid), *extra]
        cache = self.__dict__.get("_fast_cache")
        if cache is not None and cache[3] == _key(transform) and _same(cache[0], sources):
            return cache[1], cache[2]
        self.drop_fast_cache()  # free the old W_eff before building the new one
        first = grid[0][1].tile.weight
        weight = torch.empty(self.out_features, self.in_features, dtype=first.dtype, device=first.device)
        for (rows, cols), tile in grid:
            block = weight[rows, cols]
            block.copy_(tile.tile.weight)
            scale = _column_scale(tile)
            if scale is not None:
                block.mul_(scale.view(-1, 1))
        bias = self._bias()
        bias = bias.detach() if bias is not None else None
        if transform is not None:
            weight, bias = transform(weight, bias)
        self.__dict__["_fast_cache"] = (_remember(sources), weight, bias, _key(transform))
        return weight, bias

    # -- internals -------------------------------------------------------------------------------
    def _grid(self) -> list[tuple[tuple[slice, slice], TorchInferenceTile]]:
        """Every tile with the (rows, cols) block of the layer's weight it holds."""
        module = self.analog_module
        if not isinstance(module, TileModuleArray):
            return [((slice(None), slice(None)), module)]
        out, c0 = [], 0
        for in_size, in_tiles in zip(module.in_sizes, module.array, strict=True):
            r0 = 0
            for out_size, tile in zip(module.out_sizes, in_tiles, strict=True):
                out.append(((slice(r0, r0 + out_size), slice(c0, c0 + in_size)), tile))
                r0 += out_size
            c0 += in_size
        return out

    def _bias(self) -> Tensor | None:
        module = self.analog_module
        if isinstance(module, TileModuleArray):
            return module.bias
        return module.bias if module.digital_bias else None

    def _sources(self, grid: list[tuple[tuple[slice, slice], TorchInferenceTile]]) -> list[Tensor | None]:
        tensors: list[Tensor | None] = []
        for _, tile in grid:
            tensors += [tile.tile.weight, tile.get_mapping_scales(), tile.get_learned_out_scales(), _alpha(tile)]
        tensors.append(self._bias())
        return tensors


def _perfect(tile: object) -> bool:
    if type(tile) is not TorchInferenceTile:  # subclasses (quantised periphery, IR drop) compute differently
        return False
    fwd = tile.rpu_config.forward
    return bool(
        (fwd.is_perfect or fwd.mv_type == AnalogMVType.IDEAL)
        and tile.input_range is None
        and not tile.analog_bias
        and not hasattr(tile.rpu_config.pre_post, "periph_quant")
    )


def _alpha(tile: TorchInferenceTile) -> Tensor | None:
    """Drift-compensation factor applied in eval mode (``None`` without drift compensation)."""
    if getattr(tile.rpu_config, "drift_compensation", None) is None:
        return None
    return tile.alpha


def _column_scale(tile: TorchInferenceTile) -> Tensor | None:
    """Per-output-column factor: mapping scales · α · learned out-scales (aihwkit's order of products)."""
    scale = None
    for part in (tile.get_mapping_scales(), _alpha(tile), tile.get_learned_out_scales()):
        if part is not None:
            part = part.detach().reshape(-1)
            scale = part if scale is None else scale * part
    return scale


def _key(transform: object) -> int | None:
    """Which fold a cache entry holds (the bound method's owner and function), None for the bare map."""
    if transform is None:
        return None
    owner = getattr(transform, "__self__", None)
    return hash((id(owner), getattr(transform, "__func__", transform)))


def _same(cached: list[_Source | None], tensors: list[Tensor | None]) -> bool:
    if len(cached) != len(tensors):
        return False
    for old, new in zip(cached, tensors, strict=True):
        if (old is None) != (new is None):
            return False
        if new is not None and (old[1] != new.data_ptr() or old[2] != new._version):
            return False
    return True


def _remember(tensors: list[Tensor | None]) -> list[_Source | None]:
    return [None if t is None else (t.detach(), t.data_ptr(), t._version) for t in tensors]
