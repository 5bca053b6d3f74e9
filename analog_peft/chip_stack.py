"""Chip-batched inference: K programmed states of one model (chips × times) in one batched forward.

On the exact fast path (perfect periphery, see :mod:`analog_peft.analog_linear`) an analog layer in
inference is the linear map ``x @ W_effᵀ + b``, and a periphery adapter that folds (GRASP, (IA)^3, BitFit)
is the map of its folded weights. :func:`linear_maps` captures every such map of a model at its current
chip state; :func:`stacked` installs K captured states at once: the input batch is repeated K times
(``[K·B, …]``) and every analog map runs as one ``bmm`` of ``[K, B·L, in]`` against ``[K, in, out]``,
while every digital layer (embeddings, attention, norms, LoRA's digital path, the head) is batch-parallel
and sees the K copies as K independent sub-batches. Copy k's outputs are state k's outputs up to float
summation order (``tests/test_chip_stack.py``). Everything is device-agnostic: on a GPU this turns
K small forwards into one large one; on a CPU it was measured slower (``benchmarks/bench_chip_stack.py``),
so the engine's default is one state at a time (``MonteCarloConfig.eval_stack = 1``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

#: one state of a model: module name → the ``(W [out, in], b [out] | None)`` its forward applies
LinearMaps = dict[str, tuple[Tensor, "Tensor | None"]]
STACK_ATTR = "_chip_stack"

__all__ = ["LinearMaps", "StackUnsupported", "linear_maps", "stacked", "stacked_linear"]


class StackUnsupported(ValueError):
    """The model cannot be evaluated chip-batched (a layer off the exact fast path)."""


@torch.no_grad()
def linear_maps(model: nn.Module) -> LinearMaps:
    """Every analog layer's exact inference map at the model's current chip state.

    A folding periphery adapter contributes its folded map (and its base layer none); any other adapter
    (LoRA: a digital path beside the base) stays as it is and its analog base contributes the tile map.
    Raises :class:`StackUnsupported` naming the first layer whose inference is not a linear map (DAC/ADC,
    output noise, a quantised periphery: the ``standard`` preset).
    """
    from analog_peft.analog_linear import AnalogLinear  # imports this module: not at the top
    from analog_peft.methods.layer import AdapterLayer

    maps: LinearMaps = {}
    covered: set[int] = set()
    was_training = model.training
    model.eval()
    try:
        for name, module in model.named_modules():
            if id(module) in covered:
                continue
            if isinstance(module, AdapterLayer) and module.adapter_enabled:
                folded = module.folded_map()
                if folded is not None:
                    maps[name] = folded
                    covered.add(id(module.base_layer))
            elif isinstance(module, AnalogLinear):
                if not module.fast_path_supported():
                    raise StackUnsupported(
                        f"layer {name!r} is not an exact linear map in inference (a non-perfect periphery, e.g. "
                        "the 'standard' preset): chip-batched evaluation needs --rpu mapped or ideal; "
                        "use eval_stack = 1")
                maps[name] = module.effective_weight()
    finally:
        model.train(was_training)
    if not maps:
        raise StackUnsupported("the model has no analog layer: nothing to stack (use eval_stack = 1)")
    return maps


@contextmanager
def stacked(model: nn.Module, states: Sequence[LinearMaps]) -> Iterator[int]:
    """Install ``states`` (from :func:`linear_maps`, same layers) for batched forwards; yields K.

    Inside, a forward of a batch repeated K times along dim 0 (``x.repeat(K, …)``) gives copy k the outputs
    of state k. The stacks are removed on exit.
    """
    if not states:
        raise ValueError("no states to stack")
    names = list(states[0])
    if any(list(s) != names for s in states[1:]):
        raise ValueError("the states to stack hold different layers")
    modules = dict(model.named_modules())
    try:
        for name in names:
            weight = torch.stack([s[name][0] for s in states])
            biases = [s[name][1] for s in states]
            bias = None if biases[0] is None else torch.stack(biases)  # type: ignore[arg-type]
            modules[name].__dict__[STACK_ATTR] = (weight, bias)
        yield len(states)
    finally:
        for name in names:
            modules[name].__dict__.pop(STACK_ATTR, None)


def stacked_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x`` (``[K·B, …, in]``, copy k = rows ``k·B … (k+1)·B``) through map k: ``[K·B, …, out]``."""
    k = weight.shape[0]
    if x.shape[0] % k:
        raise ValueError(f"a chip-batched forward needs the batch repeated {k} times, got {x.shape[0]} rows")
    xs = x.reshape(k, -1, x.shape[-1])
    wt = weight.transpose(1, 2)
    out = torch.bmm(xs, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), xs, wt)
    return out.reshape(*x.shape[:-1], weight.shape[1])


def stack_of(module: nn.Module) -> tuple[Tensor, Tensor | None] | None:
    """The installed stack of ``module`` (None outside :func:`stacked`)."""
    return module.__dict__.get(STACK_ATTR)
