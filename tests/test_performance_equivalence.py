"""Our PCM model draws the same noise statistics as aihwkit's ``PCMLikeNoiseModel`` (what the speed-up
of ``benchmarks/bench_programming.py`` is compared at): programmed weights, drift exponents and drifted
weights on a realistic matrix agree in mean and std within a few %. Not timed."""

from __future__ import annotations

import torch
from aihwkit.inference import PCMLikeNoiseModel

import device_models
from device_models import make_generator


def _matrix() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(768, 768, generator=gen) * 0.02
    w[0, :8] = 0.15  # a few outliers set max|W|, as in pretrained transformers
    return w


def _close(a: float, b: float, rel: float) -> bool:
    return abs(a - b) <= rel * max(abs(a), abs(b))


def test_pcm_programming_drift_and_nu_match_aihwkit() -> None:
    w = _matrix()
    ours_model = device_models.get("pcm")
    theirs = PCMLikeNoiseModel(g_max=25.0)

    state = ours_model.program(w, make_generator(1))
    torch.manual_seed(1)
    w_prog_theirs, params = theirs.apply_programming_noise(w)
    err_ours = ours_model.programmed_weights(state) - w
    err_theirs = w_prog_theirs - w
    assert abs(err_ours.mean() - err_theirs.mean()) < 0.05 * err_theirs.std()
    assert _close(float(err_ours.std()), float(err_theirs.std()), 0.03)

    nu_ours = state.tensors["nu"]
    nu_theirs = torch.stack(list(params)) if isinstance(params, (list, tuple)) else params
    assert _close(float(nu_ours.mean()), float(nu_theirs.mean()), 0.02)
    assert _close(float(nu_ours.std()), float(nu_theirs.std()), 0.03)

    for t in (3600.0, 365 * 86400.0):
        w_t_ours = ours_model.read(state, t, make_generator(2))
        w_t_theirs = theirs.apply_drift_noise(w_prog_theirs, params, t)
        # drift shrinks |W| (≈ t^-ν) and read noise spreads it: compare shrink factor and residual spread
        shrink_ours = float(w_t_ours.abs().mean() / w.abs().mean())
        shrink_theirs = float(w_t_theirs.abs().mean() / w.abs().mean())
        assert _close(shrink_ours, shrink_theirs, 0.03)
        res_ours = w_t_ours / shrink_ours - w
        res_theirs = w_t_theirs / shrink_theirs - w
        assert _close(float(res_ours.std()), float(res_theirs.std()), 0.05)
