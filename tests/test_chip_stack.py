"""Chip-batched evaluation (several chip states in one batched forward) equals one state at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from analog_peft.chip_stack import StackUnsupported, linear_maps, stacked, stacked_linear
from analog_peft.chips import ChipProgrammer
from analog_peft.deploy import deploy
from analog_peft.methods import GraspConfig, IA3Config, LoraConfig
from analog_peft.models import load_tokenizer
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo

PCM = "pcm"
TIMES = [1.0, 3600.0, 86400.0]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, save_perturbed_adapters) -> dict[str, str]:
    return save_perturbed_adapters(tmp_path_factory.mktemp("stack_adapters"),
                                   [("grasp", GraspConfig(k=8)), ("lora", LoraConfig(r=4)), ("ia3", IA3Config())],
                                   seed=1)


def _batch(n: int = 6) -> dict[str, torch.Tensor]:
    tok = load_tokenizer("minilm-l6")
    texts = ["a gripping, beautifully shot film", "dull and far too long", "not bad at all",
             "the worst script of the year", "an actor at the top of his game", "fine"][:n]
    return dict(tok(texts, padding=True, return_tensors="pt"))


@pytest.mark.parametrize("method", ["grasp", "lora", "ia3"])
def test_stacked_forward_equals_each_chip_state(adapters, method):
    dep = deploy("minilm-l6", adapters[method], "periphery", "mapped", 2)
    chips = ChipProgrammer(dep.model, PCM, seed=3)
    batch = _batch()
    states, expected = [], []
    with torch.no_grad():
        for chip, t in [(0, 1.0), (0, 86400.0), (1, 31536000.0)]:  # two times of one chip and another chip
            chips.at(chip, t)
            expected.append(dep.model(**batch).logits)
            states.append(linear_maps(dep.model))
        with stacked(dep.model, states) as k:
            big = {n: v.repeat(k, 1) for n, v in batch.items()}
            got = dep.model(**big).logits.split(len(expected[0]))
    assert k == 3
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(expected[0], expected[2])  # the states really differ
    with torch.no_grad():  # the stacks are gone after the block: the last state's own forward
        torch.testing.assert_close(dep.model(**batch).logits, expected[-1], rtol=0, atol=0)


def test_one_map_per_analog_layer_folded_adapters_at_their_wrapper(adapters):
    from analog_peft.analog_linear import AnalogLinear

    dep = deploy("minilm-l6", adapters["grasp"], "periphery", "mapped", 2)
    ChipProgrammer(dep.model, PCM, seed=0).at(0, 1.0)
    maps = linear_maps(dep.model)
    analog = [m for m in dep.model.modules() if isinstance(m, AnalogLinear)]
    assert len(maps) == len(analog) > 0
    assert all(not n.endswith("base_layer") for n in maps)  # GRASP folds: the wrapper's map, not its base's


def test_stacked_linear_bad_batch_and_bad_states():
    w = torch.randn(3, 4, 5)
    with pytest.raises(ValueError, match="repeated 3 times"):
        stacked_linear(torch.randn(4, 5), w, None)
    torch.testing.assert_close(stacked_linear(torch.randn(6, 2, 5), w, torch.randn(3, 4)).shape, (6, 2, 4))
    with pytest.raises(ValueError, match="no states"), stacked(torch.nn.Linear(2, 2), []):
        pass


def test_standard_periphery_is_refused():
    dep = deploy("minilm-l6", None, "periphery", "standard", 2)
    with pytest.raises(StackUnsupported, match="eval_stack = 1"):
        linear_maps(dep.model)


def _config(adapters: dict[str, str], **kw) -> MonteCarloConfig:
    base = dict(methods=[MethodSpec(n, p) for n, p in adapters.items()] + [MethodSpec("base", None)],
                max_examples=40, batch_size=16, n_chips=2, times=TIMES, device_model=PCM, rpu="mapped", seed=2)
    return MonteCarloConfig(**{**base, **kw})


@pytest.mark.parametrize("stack", [3, 2])  # all times at once; groups of 2 + 1
def test_engine_rows_equal_one_state_at_a_time(adapters, tmp_path, stack):
    one = run_montecarlo(_config(adapters), tmp_path / "one", progress=False)
    cfg = _config(adapters, eval_stack=stack)
    assert cfg.digest() == _config(adapters).digest()  # the same rows: the same run directory
    many = run_montecarlo(cfg, tmp_path / "many", progress=False)
    pd.testing.assert_frame_equal(many, one)
    a = np.load(tmp_path / "one" / "chips" / "chip_00001.npz")
    b = np.load(tmp_path / "many" / "chips" / "chip_00001.npz")
    np.testing.assert_array_equal(a["pred"], b["pred"])
    np.testing.assert_allclose(a["loss"].astype(float), b["loss"].astype(float), rtol=2e-3, atol=1e-3)


def test_engine_refuses_bad_stack(adapters, tmp_path):
    with pytest.raises(ValueError, match="eval_stack must be >= 1"):
        _config(adapters, eval_stack=0).validate()
    with pytest.raises(ValueError, match="decoder tasks run one state at a time"):
        MonteCarloConfig(methods=[MethodSpec("base", None)], base_model="tiny-gpt2", task="lm",
                         eval_stack=2).validate()
    with pytest.raises(StackUnsupported, match="--rpu mapped or ideal"):
        run_montecarlo(_config(adapters, rpu="standard", allow_conversion_override=True, eval_stack=2, n_chips=1),
                       tmp_path / "std", progress=False)
