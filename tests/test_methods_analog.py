"""Adapters as digital periphery around analog (aihwkit) layers: same function as digital, analog tiles
untouched by training, merging refused with a clear fix."""

from __future__ import annotations

import pytest
import torch
from test_methods_helpers import fresh, load_minilm, perturb, sst2_batch

from analog_peft.convert import convert
from analog_peft.methods import (
    AdapterError,
    BitFitConfig,
    GraspConfig,
    IA3Config,
    LoraConfig,
    ParaConfig,
    StochGraspConfig,
    attach,
    load_adapter,
    merge_adapter,
)

PERIPHERY = {
    "grasp": lambda: GraspConfig(k=8),
    "stochgrasp": lambda: StochGraspConfig(k=8),
    "lora": lambda: LoraConfig(r=4),
    "ia3": lambda: IA3Config(),
    "bitfit": lambda: BitFitConfig(),
    "para": lambda: ParaConfig(),
}


@pytest.fixture(scope="module")
def digital():
    return load_minilm()


@pytest.fixture(scope="module")
def analog(digital):
    model = fresh(digital)
    report = convert(model, rpu="ideal")
    assert len(report.analog) == 36
    return model


@pytest.fixture(scope="module")
def batch():
    return sst2_batch(8, offset=200)


def inputs(batch):
    return {k: v for k, v in batch.items() if k != "labels"}


@pytest.mark.parametrize("method", list(PERIPHERY))
def test_analog_adapter_matches_digital_and_loads_both_ways(digital, analog, batch, method, tmp_path):
    adapted = attach(fresh(analog), PERIPHERY[method]()).eval()
    with torch.no_grad():
        assert (adapted(**inputs(batch)).logits - digital(**inputs(batch)).logits).abs().max() <= 1e-5
    perturb(adapted, 0.05)
    adapted.save_adapter(tmp_path)
    on_digital = load_adapter(fresh(digital), tmp_path).eval()
    with torch.no_grad():
        out_analog = adapted(**inputs(batch)).logits
        out_digital = on_digital(**inputs(batch)).logits
    assert (out_analog - out_digital).abs().max() <= 1e-5


@pytest.mark.parametrize("method", ["grasp", "bitfit"])
def test_training_on_analog_leaves_tiles_untouched(analog, batch, method):
    adapted = attach(fresh(analog), PERIPHERY[method]())
    tiles = {n: p.detach().clone() for n, p in adapted.named_parameters() if n.endswith("tile.weight")}
    assert len(tiles) == 36 and not any(p.requires_grad for n, p in adapted.named_parameters() if n in tiles)
    bias_before = {n: p.detach().clone() for n, p in adapted.named_parameters() if n.endswith("analog_module.bias")}
    opt = torch.optim.Adam(adapted.param_groups(1e-2))
    adapted.eval()  # aihwkit: chip-in-the-loop forward/backward in eval mode
    for _ in range(2):
        loss = adapted(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    for n, p in adapted.named_parameters():
        if n in tiles:
            assert torch.equal(p.detach(), tiles[n])
    changed_bias = [n for n, p in adapted.named_parameters() if n in bias_before
                    and not torch.equal(p.detach(), bias_before[n])]
    assert bool(changed_bias) == (method == "bitfit")  # BitFit trains the digital analog_module.bias


def test_merge_into_analog_layer_is_refused(analog):
    adapted = attach(fresh(analog), LoraConfig())
    with pytest.raises(AdapterError, match="analog layer .*Merge before conversion.*merge_adapter"):
        merge_adapter(adapted)
    assert adapted.adapter_layers()  # nothing was half-merged


def test_merge_then_convert_equals_periphery(digital, batch, tmp_path):
    """fused deployment path: adapter on digital base → merge → convert == adapter around analog layers."""
    adapted = attach(fresh(digital), GraspConfig(k=8)).eval()
    perturb(adapted, 0.1)
    with torch.no_grad():
        ref = adapted(**inputs(batch)).logits
    merged = merge_adapter(adapted)
    convert(merged, rpu="ideal")
    with torch.no_grad():
        assert (merged(**inputs(batch)).logits - ref).abs().max() <= 1e-4
