"""Periphery adapters folded into each chip's effective weights on the inference fast path: same outputs."""

from __future__ import annotations

import pytest
import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import convert
from analog_peft.methods import (
    BitFitConfig,
    GraspConfig,
    IA3Config,
    LoraConfig,
    ParaConfig,
    StochGraspConfig,
    attach,
)
from analog_peft.methods.layer import AdapterLayer
from analog_peft.models import load_classifier, load_tokenizer

CONFIGS = {
    "grasp": lambda: GraspConfig(k=4),
    "stochgrasp": lambda: StochGraspConfig(k=4, sigma_init=0.05, sigma_target=0.05),
    "lora": lambda: LoraConfig(r=4),
    "ia3": lambda: IA3Config(),
    "bitfit": lambda: BitFitConfig(),
    "para": lambda: ParaConfig(),
}


def _perturb(adapted) -> None:
    """Move every adapter parameter off its identity initialisation (so folding has something to do)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in adapted.adapter_parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _unfolded(adapted, batch):
    layers = [m for m in adapted.modules() if isinstance(m, AdapterLayer)]
    saved = [m.foldable_now for m in layers]
    for m in layers:
        m.foldable_now = lambda: False
    try:
        return adapted(**batch).logits
    finally:
        for m, f in zip(layers, saved, strict=True):
            m.foldable_now = f


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_folded_forward_equals_the_adapter_forward_on_a_chip(tiny_bert, method):
    model = load_classifier(tiny_bert, 2)
    convert(model, "mapped")
    adapted = attach(model, CONFIGS[method]())
    _perturb(adapted)
    adapted.eval()
    batch = dict(load_tokenizer(tiny_bert)(["a gripping film", "dull and long"], padding=True, return_tensors="pt"))
    chips = ChipProgrammer(model, "pcm", seed=0).program(0)
    outputs = []
    with torch.no_grad():
        for t in (1.0, 86400.0):
            chips.drift(t)
            folded = adapted(**batch).logits
            torch.testing.assert_close(folded, _unfolded(adapted, batch), rtol=1e-4, atol=1e-5)
            outputs.append(folded)
        assert not torch.equal(outputs[0], outputs[1])  # the fold follows the chip's drift
        if method in ("grasp", "lora"):
            before = adapted(**batch).logits
            for p in adapted.adapter_parameters():
                p.mul_(1.5)  # an in-place change of the adapter rebuilds the fold
            torch.testing.assert_close(adapted(**batch).logits, _unfolded(adapted, batch), rtol=1e-4, atol=1e-5)
            assert not torch.equal(before, adapted(**batch).logits)
    with torch.no_grad():
        adapted(**batch)  # a folded forward last (the unfolded reference re-caches the bare map)
    folded_layers = [m for m in adapted.modules() if isinstance(m, AdapterLayer) and m.foldable_now()]
    assert bool(folded_layers) == (method not in ("para", "bitfit"))  # PARA is input-dependent; BitFit wraps nothing
    assert all(m.base_layer.__dict__["_fast_cache"][3] is not None for m in folded_layers)  # the fold was cached


def test_a_sampling_stochgrasp_layer_is_not_folded(tiny_bert):
    model = load_classifier(tiny_bert, 2)
    convert(model, "mapped")
    adapted = attach(model, StochGraspConfig(k=4, sigma_init=0.05, sigma_target=0.05)).eval()
    adapted.set_sampling(True)
    layers = [m for m in adapted.modules() if isinstance(m, AdapterLayer)]
    assert layers and not any(m.foldable_now() for m in layers)
    for m in layers:
        m.set_chip_sample(3)
    assert all(m.foldable_now() for m in layers)  # one fixed sample per chip folds again
