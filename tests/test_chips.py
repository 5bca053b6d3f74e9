"""Seeded chips: reproducibility, reset, noise statistics at model level, drift and its compensation."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import pytest
import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import analog_tiles, convert
from analog_peft.models import load_classifier, load_tokenizer
from device_models import DeviceModelError


@pytest.fixture
def model():
    m = load_classifier("minilm-l6", num_labels=2, seed=0)
    convert(m, "ideal")
    return m


@pytest.fixture
def batch(sst2_sentences):
    return load_tokenizer("minilm-l6")(sst2_sentences[:8], padding=True, return_tensors="pt")


def digest(weights: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(weights):
        h.update(key.encode())
        h.update(weights[key].numpy().tobytes())
    return h.hexdigest()


def test_same_seed_same_chip_in_any_order(model):
    chips = ChipProgrammer(model, "pcm", seed=7)
    a = digest(chips.program(2).drift(3600.0).weights())
    chips.program(5).drift(86400.0)
    chips.program(2).drift(86400.0)
    b = digest(chips.drift(3600.0).weights())
    assert a == b
    assert digest(chips.program(3).drift(3600.0).weights()) != a
    assert digest(ChipProgrammer(model, "pcm", seed=8).program(2).drift(3600.0).weights()) != a


def test_same_chip_in_a_fresh_process(model):
    chips = ChipProgrammer(model, "pcm", seed=11)
    here = digest(chips.program(4).drift(86400.0).weights())
    code = textwrap.dedent(
        """
        import hashlib, torch
        from analog_peft.chips import ChipProgrammer
        from analog_peft.convert import convert
        from analog_peft.models import load_classifier
        torch.manual_seed(12345)  # the global RNG must not matter
        m = load_classifier("minilm-l6", num_labels=2, seed=0)
        convert(m, "ideal")
        w = ChipProgrammer(m, "pcm", seed=11).program(4).drift(86400.0).weights()
        h = hashlib.sha256()
        for k in sorted(w):
            h.update(k.encode()); h.update(w[k].numpy().tobytes())
        print(h.hexdigest())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == here


def test_global_rng_does_not_change_chips(model):
    chips = ChipProgrammer(model, "hermes", seed=1)
    torch.manual_seed(0)
    a = digest(chips.program(0).drift(60.0).weights())
    torch.manual_seed(999)
    torch.randn(100)
    assert digest(chips.program(0).drift(60.0).weights()) == a


def test_reset_restores_the_converted_model(model, batch):
    with torch.no_grad():
        ref = model(**batch).logits
    chips = ChipProgrammer(model, "pcm", seed=0).program(1).drift(86400.0)
    with torch.no_grad():
        assert not torch.allclose(model(**batch).logits, ref)
    chips.reset()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, ref)
    assert all(torch.equal(w, chips.targets()[k]) for k, w in chips.weights().items())


def test_reset_keeps_buffers_for_the_next_chip_and_release_frees_them(model):
    other = ChipProgrammer(model, "pcm", seed=0).program(2).drift(3600.0)
    fresh = other.weights()
    other.reset()
    chips = ChipProgrammer(model, "pcm", seed=0).program(1).drift(86400.0)
    g_prog = chips._tiles[0].state.tensors["g_prog"]
    chips.reset()
    assert chips._tiles[0].state is None
    chips.program(2).drift(3600.0)
    assert chips._tiles[0].state.tensors["g_prog"].data_ptr() == g_prog.data_ptr()  # re-used, not re-allocated
    assert digest(chips.weights()) == digest(fresh)  # ... and overwritten completely
    chips.reset().release()
    assert all(tl.spare is None and tl.state is None for tl in chips._tiles)


def test_copy_from_is_bit_identical_to_programming(model):
    leader = ChipProgrammer(model, "pcm", seed=5).program(1).drift(86400.0)
    twin = load_classifier("minilm-l6", num_labels=2, seed=0)
    convert(twin, "ideal")
    follower = ChipProgrammer(twin, "pcm", seed=5)
    with pytest.raises(RuntimeError, match="not programmed"):
        ChipProgrammer(model, "pcm", seed=5).copy_from(follower)
    follower.copy_from(leader)
    assert (follower.chip, follower.t) == (1, 86400.0)
    copied = follower.weights()
    alphas = [float(t.alpha) for _, t in analog_tiles(twin)]
    assert alphas == [float(t.alpha) for _, t in analog_tiles(model)] and any(a != 1.0 for a in alphas)
    follower.reset().program(1).drift(86400.0)  # its own draws: the same chip
    assert digest(follower.weights()) == digest(copied) == digest(leader.weights())
    assert [float(t.alpha) for _, t in analog_tiles(twin)] == alphas
    follower.copy_from(leader.drift(3600.0)).drift(86400.0)  # drifting a copied chip re-draws it from the seed
    assert digest(follower.weights()) == digest(copied)
    next(iter(follower.targets().values())).add_(1e-3)  # a target changed in place after the pair was checked
    with pytest.raises(ValueError, match="cannot copy chips"):
        follower.copy_from(leader)


def test_relative_gaussian_statistics_on_a_real_layer(model):
    eta = 0.02
    chips = ChipProgrammer(model, {"name": "gaussian", "params": {"eta": eta}}, seed=3).program(0)
    key = next(k for k in chips.tile_keys if "layer.2.output.dense" in k)  # 384 × 1536 = 590k weights
    target, programmed = chips.targets()[key], chips.weights()[key]
    rel_std = float((programmed - target).std() / target.abs().max())
    assert abs(rel_std - eta) / eta < 0.05


def test_pcm_drift_shrinks_weights_as_the_drift_law(model):
    chips = ChipProgrammer(model, "pcm", seed=0, compensate_drift=False).program(0)
    means = {}
    for t in (1.0, 3600.0, 86400.0 * 365):
        chips.drift(t)
        means[t] = sum(float(w.abs().mean()) for w in chips.weights().values())
    assert means[1.0] > means[3600.0] > means[86400.0 * 365]
    # mean drift exponent of PCM for mid-range conductances is ~0.05-0.06: a year shrinks |w| by
    # (1 + 3.15e7/20)^-ν ≈ 0.43-0.50 relative to t≈0
    ratio = means[86400.0 * 365] / means[1.0]
    assert 0.35 < ratio < 0.6


def test_drift_compensation_brings_outputs_closer(batch):
    """With column-wise mapping (preset 'mapped'), global drift compensation undoes most of a month's drift."""
    model = load_classifier("minilm-l6", num_labels=2, seed=0)
    convert(model, "mapped")
    with torch.no_grad():
        ref = model.bert(**batch).last_hidden_state
    errors = {}
    for compensate in (False, True):
        chips = ChipProgrammer(model, "pcm", seed=0, compensate_drift=compensate).program(0).drift(86400.0 * 30)
        with torch.no_grad():
            out = model.bert(**batch).last_hidden_state
        errors[compensate] = float((out - ref).norm() / ref.norm())
        chips.reset()
    assert errors[True] < 0.7 * errors[False]
    alphas = [float(t.alpha) for _, t in analog_tiles(model)]
    assert alphas == [1.0] * len(alphas)  # reset restores α


def test_changed_analog_weights_are_not_silently_discarded(model):
    chips = ChipProgrammer(model, "pcm", seed=0)
    _, tile = analog_tiles(model)[0]
    with torch.no_grad():
        tile.tile.weight.mul_(1.01)  # e.g. an optimiser step on the analog weights
    with pytest.raises(RuntimeError, match="retarget"):
        chips.program(0)
    chips.retarget().program(0)  # programs the new weights


def test_drift_before_program_is_refused(model):
    with pytest.raises(RuntimeError, match="program"):
        ChipProgrammer(model, "pcm").drift(1.0)


def test_reram_only_at_fitted_times(model):
    chips = ChipProgrammer(model, "reram", seed=0).program(0)
    chips.drift(86400.0)
    with pytest.raises(DeviceModelError, match="fitted"):
        chips.drift(3600.0)


def test_unconverted_model_is_refused():
    with pytest.raises(ValueError, match="convert"):
        ChipProgrammer(load_classifier("minilm-l6", num_labels=2), "pcm")


def test_negative_eta_is_refused(model):
    with pytest.raises(DeviceModelError, match="eta"):
        ChipProgrammer(model, {"name": "gaussian", "params": {"eta": -0.1}})


@pytest.mark.parametrize("compensate", [True, False])
def test_overflowing_device_parameters_stop_with_the_tile_and_chip(model, compensate):
    """η = 1e40 overflows the programmed weights to inf/NaN: programming must stop naming tile and chip
    (it used to run on to an accuracy of 0.5), with or without drift compensation."""
    from analog_peft.chips import NonFiniteChipError

    chips = ChipProgrammer(model, {"name": "gaussian", "eta": 1e40}, seed=0, compensate_drift=compensate)
    with pytest.raises(NonFiniteChipError, match=r"chip 3 at t = 0 s: tile .*#0 has \d+ non-finite weights"):
        chips.program(3).drift(0.0)
    chips.reset()


def test_the_portable_kernels_agree_with_float64_math():
    """The chip scheme's own log/exp/pow/normal/sums are accurate (not only reproducible)."""
    from scipy import stats

    from device_models import portable as P

    gen = torch.Generator().manual_seed(3)
    x = torch.empty(200_001, dtype=torch.int32).random_(1, 1 << 24, generator=gen).float() * 2.0**-18
    ref = torch.log(x.double())
    assert ((P.log(x).double() - ref).abs() <= 2.0**-23 * ref.abs().clamp(min=1.0)).all()
    z = torch.linspace(-80.0, 80.0, 200_001)
    assert ((P.exp(z).double() / torch.exp(z.double()) - 1).abs().max() < 2e-7)
    assert ((P.pow(x, 0.65).double() / x.double() ** 0.65 - 1).abs().max() < 2e-6)
    n = P.normal(torch.empty(400_001), gen)
    assert abs(float(n.mean())) < 0.01 and abs(float(n.std()) - 1) < 0.01
    assert stats.kstest(n.numpy(), "norm").pvalue > 1e-3
    v = P.normal(torch.empty(100_003), gen)
    assert abs(P.exact_sum(v) - float(v.double().sum())) < 1e-6 * float(v.abs().sum())
    assert P.std(v) == pytest.approx(float(v.double().std()), rel=1e-6)
    ratio = 86400.0 / 20 + 1
    assert P.py_log(ratio) == pytest.approx(float(torch.log(torch.tensor(ratio, dtype=torch.float64))), rel=1e-15)
