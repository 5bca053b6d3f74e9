"""The perfect-periphery inference fast path equals aihwkit's forward and follows every weight change."""

from __future__ import annotations

import pytest
import torch
from aihwkit.nn import AnalogLinear as AihwkitAnalogLinear
from torch import nn

from analog_peft.analog_linear import AnalogLinear
from analog_peft.chips import ChipProgrammer
from analog_peft.convert import analog_layers, convert
from analog_peft.presets import RPUPreset


def _stack(rpu) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 24), nn.GELU(), nn.Linear(24, 40), nn.GELU(), nn.Linear(40, 8))
    convert(model, rpu, modules=["0", "2", "4"])
    return model.eval()


def _aihwkit(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The same model through aihwkit's own ``AnalogLinear.forward`` (the fast path bypassed)."""
    with torch.no_grad():
        for layer in analog_layers(model).values():
            layer.forward = AihwkitAnalogLinear.forward.__get__(layer)
        try:
            return model(x)
        finally:
            for layer in analog_layers(model).values():
                del layer.forward


def _fast(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("rpu", [RPUPreset("mapped", {"tile_size": 16}), "ideal"])
def test_fast_path_equals_aihwkit_through_chip_lifecycle(rpu):
    model = _stack(rpu)
    layers = list(analog_layers(model).values())
    assert all(isinstance(m, AnalogLinear) and m.fast_path_supported() for m in layers)
    if isinstance(rpu, RPUPreset):  # 40 inputs over 16-row tiles: 3 input splits per layer
        assert layers[0].analog_module.analog_tile_count == 3
        with torch.no_grad():  # non-trivial learned out-scales
            for m in layers:
                for tile in m.analog_tiles():
                    tile.get_learned_out_scales().mul_(torch.linspace(0.5, 1.5, tile.out_size))
    x = torch.randn(64, 40)
    digital = _fast(model, x)
    chips = ChipProgrammer(model, "pcm", seed=3)
    outputs = []
    for chip, t in [(0, 0.0), (0, 86400.0), (1, 86400.0), (1, 3.15e7)]:
        chips.at(chip, t)
        ref, fast = _aihwkit(model, x), _fast(model, x)
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
        outputs.append(fast)
    for a, b in zip(outputs[:-1], outputs[1:], strict=True):  # every program/drift reached the cached W_eff
        assert not torch.allclose(a, b)
    assert (outputs[-1] - digital).abs().max() > 1e-3
    chips.reset()
    torch.testing.assert_close(_fast(model, x), digital, rtol=1e-5, atol=1e-6)


def test_cache_follows_set_weights_alpha_and_bias():
    model = _stack(RPUPreset("mapped", {"tile_size": 16}))
    layer = next(iter(analog_layers(model).values()))
    x = torch.randn(8, 40)
    w, b = layer.get_weights()
    before = _fast(model, x)
    layer.set_weights(w * 0.5, b)  # aihwkit replaces/rewrites the tile tensors
    torch.testing.assert_close(_fast(model, x), _aihwkit(model, x), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(_fast(model, x), before)
    for tile in layer.analog_tiles():
        tile.alpha.fill_(2.0)
    torch.testing.assert_close(_fast(model, x), _aihwkit(model, x), rtol=1e-5, atol=1e-6)
    tile = next(iter(layer.analog_tiles()))
    tile.__dict__.pop("alpha", None)  # aihwkit's drift_weights replaces the buffer by a new tensor
    del tile._buffers["alpha"]
    tile.alpha = torch.full((1,), 3.0)
    torch.testing.assert_close(_fast(model, x), _aihwkit(model, x), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        layer.analog_module.bias.add_(1.0)
    torch.testing.assert_close(_fast(model, x), _aihwkit(model, x), rtol=1e-5, atol=1e-6)


def test_no_fast_path_when_training_with_grad_or_imperfect_periphery():
    standard = _stack("standard")
    assert not any(m.fast_path_supported() for m in analog_layers(standard).values())
    switched = _stack("ideal")  # a periphery made imperfect after conversion (aihwkit allows it on the fly)
    layer = next(iter(analog_layers(switched).values()))
    assert layer.fast_path_supported()
    for tile in layer.analog_tiles():
        tile.rpu_config.forward.is_perfect = False
    assert not layer.fast_path_supported()
    model = _stack("ideal")
    layer = next(iter(analog_layers(model).values()))
    x = torch.randn(4, 40, requires_grad=True)
    model(x).sum().backward()  # eval mode with autograd on: aihwkit's path, gradients reach the tiles
    assert "_fast_cache" not in layer.__dict__
    assert layer.analog_tiles().__next__().tile.weight.grad is not None
    _fast(model, x.detach())
    assert "_fast_cache" in layer.__dict__
    model.train()
    assert "_fast_cache" not in layer.__dict__  # train() frees W_eff
    with torch.no_grad():
        model(x)
    assert "_fast_cache" not in layer.__dict__
