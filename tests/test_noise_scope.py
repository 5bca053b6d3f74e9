"""Where the noise hurts: a chip programmed on some layers only (roles, blocks, names), the rest kept digital."""

from __future__ import annotations

import pytest
import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import convert
from analog_peft.models import load_classifier

PCM = "pcm"


@pytest.fixture(scope="module")
def model(tiny_bert):
    m = load_classifier(tiny_bert, num_labels=2, seed=0)
    convert(m, "ideal")
    return m


def _chip(model, **kw) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    chips = ChipProgrammer(model, PCM, seed=3, **kw)
    chips.at(1, 86400.0)
    weights = {k: w.clone() for k, w in chips.weights().items()}
    targets = chips.targets()
    chips.reset()
    return weights, targets


def test_a_role_alone_draws_what_it_draws_on_the_full_chip(model):
    full, targets = _chip(model)
    only_q, _ = _chip(model, noisy_layers=["role:q"])
    q = [k for k in full if k.split("#")[0].endswith("attention.self.query")]
    assert len(q) == 2  # one query layer per block of the 2-block model
    for key, w in only_q.items():
        if key in q:
            assert torch.equal(w, full[key]) and not torch.equal(w, targets[key])
        else:
            assert torch.equal(w, targets[key])


def test_digital_layers_are_exact_and_the_rest_unchanged(model):
    full, targets = _chip(model)
    kept, _ = _chip(model, digital_layers=["block:0", "role:ffn_down"])
    for key, w in kept.items():
        layer = key.split("#")[0]
        digital = ".layer.0." in layer or (layer.endswith(".output.dense") and ".attention." not in layer)
        assert torch.equal(w, targets[key] if digital else full[key]), key


def test_shared_chips_need_the_same_noise_scope(model):
    a = ChipProgrammer(model, PCM, seed=3)
    assert a.shares_chips_with(ChipProgrammer(model, PCM, seed=3))
    assert not a.shares_chips_with(ChipProgrammer(model, PCM, seed=3, digital_layers=["role:v"]))


@pytest.mark.parametrize(("kw", "match"), [
    ({"noisy_layers": ["role:nope"]}, r"no role 'nope'; roles: \["),
    ({"noisy_layers": ["block:7"]}, r"blocks are block:0 … block:1"),
    ({"digital_layers": ["attention.nothing"]}, r"'attention.nothing' selects no analog layer"),
    ({"noisy_layers": ["role:q"], "digital_layers": ["role:q"]}, "leave no analog layer noisy"),
])
def test_bad_scopes_are_refused_in_one_line(model, kw, match):
    with pytest.raises(ValueError, match=match):
        ChipProgrammer(model, PCM, **kw)


def test_monte_carlo_rows_of_a_scope(tiny_bert, tmp_path):
    """A table with every layer selected is the full table; one role only is closer to the digital rows."""
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo

    def table(name, **kw):
        cfg = MonteCarloConfig(methods=[MethodSpec("base", None)], base_model=tiny_bert, max_examples=24,
                               batch_size=24, n_chips=2, times=[86400.0], device_model={"name": "gaussian", "eta": 0.2},
                               rpu="ideal", seed=1, run="scope", **kw)
        df = run_montecarlo(cfg, tmp_path / name, progress=False)
        chips = df[df.chip >= 0].sort_values(["chip", "metric"])
        return cfg, chips.reset_index(drop=True)

    cfg_all, full = table("all")
    cfg_sel, everything = table("every", noisy_layers=["re:.*"])
    assert cfg_sel.digest() != cfg_all.digest()  # a scope is hashed ...
    assert full.value.tolist() == everything.value.tolist()  # ... and selecting every layer is the full chip
    with pytest.raises(ValueError, match="noisy_layers must be a list"):
        MonteCarloConfig(methods=[MethodSpec("base", None)], noisy_layers="role:q").validate()
