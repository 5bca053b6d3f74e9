"""The numba kernels (device_models._fused) give the bits of the torch-op forms (device_models.portable)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from device_models import _fused, portable
from device_models._workspace import Workspace

pytestmark = pytest.mark.skipif(not _fused.ENABLED, reason="numba kernels disabled (ANALOG_PEFT_FUSED=0 or no numba)")
ROOT = Path(__file__).resolve().parents[1]


def _both(fn, x: torch.Tensor, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    fused = fn(x.clone())
    with monkeypatch.context() as m:
        m.setattr(_fused, "ENABLED", False)
        plain = fn(x.clone())
    return fused, plain


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.float32
    diff = (a.view(torch.int32) != b.view(torch.int32)).nonzero()
    assert diff.numel() == 0, f"{diff.numel()} elements differ, first at {diff[:3].tolist()}: {a[diff[:3, 0]]} vs {b[diff[:3, 0]]}"


def _inputs(seed: int, n: int, lo: float, hi: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.empty(n).uniform_(lo, hi, generator=g)


@pytest.mark.parametrize("n", [1, 7, 16385, 200_003])
def test_exp_log_pow_are_the_torch_op_bits(n, monkeypatch):
    work = Workspace()
    x = _inputs(n, n, -100.0, 100.0)  # beyond exp's clamp on both sides
    _same_bits(*_both(lambda v: portable.exp_(v, work), x, monkeypatch))
    pos = torch.exp(_inputs(n + 1, n, -80.0, 80.0))  # positive normal floats over most of the range
    _same_bits(*_both(lambda v: portable.log_(v, work), pos, monkeypatch))
    _same_bits(*_both(lambda v: portable.pow_(v, 0.65, work), pos, monkeypatch))
    _same_bits(*_both(lambda v: portable.pow_(v, -1.7, work), pos, monkeypatch))


@pytest.mark.parametrize("n", [1, 2, 3, 32769, 100_001])
def test_normal_draws_are_the_torch_op_bits(n, monkeypatch):
    def draw(v: torch.Tensor) -> torch.Tensor:
        return portable.normal_(v, torch.Generator().manual_seed(n), Workspace())

    fused, plain = _both(draw, torch.empty(n), monkeypatch)
    _same_bits(fused, plain)
    if n > 10_000:  # and they are standard normal draws
        assert abs(float(fused.mean())) < 5 / n**0.5 and abs(float(fused.std()) - 1) < 5 / n**0.5


def test_exact_sums_are_the_torch_op_sums(monkeypatch):
    x = _inputs(3, 123_457, -2.0, 5.0) * 1e-3
    for fn in (portable.exact_sum, portable.mean_abs, portable.std):
        fused, plain = _both(lambda v, fn=fn: torch.tensor([fn(v)], dtype=torch.float64), x, monkeypatch)
        assert fused.item() == plain.item()
    with pytest.raises(ValueError, match="non-finite"):
        portable.exact_sum(torch.tensor([1.0, float("nan"), 2.0]))
    with pytest.raises(ValueError, match="non-finite"):
        portable.exact_sum(torch.tensor([1.0, float("inf")]))


@pytest.mark.parametrize("cpu", ["generic", "haswell"])
def test_other_code_generation_gives_the_same_bits(cpu, tmp_path):
    """numba compiled for another CPU (no AVX at all / AVX2 without AVX-512) writes the same bits (the portable
    kernels and a PCM chip's programming and read)."""
    script = (
        "import torch, hashlib\n"
        "from device_models import portable, _fused\n"
        "from device_models._workspace import Workspace\n"
        "assert _fused.ENABLED\n"
        "g = torch.Generator().manual_seed(5); w = Workspace()\n"
        "x = portable.normal_(torch.empty(50_001), g, w)\n"
        "e = portable.exp_(x.clone().mul_(3.0), w)\n"
        "p = portable.pow_(x.clone().abs_().add_(1e-3), 0.65, w)\n"
        "from device_models.registry import get\n"
        "m = get('pcm'); wt = x.reshape(-1, 1).clone(); st = m.program_into(wt, g, w)\n"
        "r = torch.empty_like(wt); m.read_into(st, 86400.0, g, r, w)\n"
        "h = hashlib.sha256(b''.join(t.numpy().tobytes() for t in (x, e, p, r, *st.tensors.values()))).hexdigest()\n"
        "print(h, portable.mean_abs(x))\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    outs = []
    for name in (cpu, None):
        e = dict(env)
        if name:
            e["NUMBA_CPU_NAME"] = name
            e["NUMBA_CPU_FEATURES"] = ""
        outs.append(subprocess.run([sys.executable, "-c", script], env=e, capture_output=True, text=True,
                                   check=True, cwd=ROOT).stdout)
    assert outs[0] == outs[1]


def test_mersenne_twister_continues_torchs_generator():
    """The compiled MT19937 gives random_'s integers and leaves the generator where random_ would."""
    assert _fused.MT_ENABLED, "the generator-state layout check failed on this torch: the MT runs in torch"
    for seed in (0, 3, 2**62 + 11):
        theirs, ours = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for n in (1, 5, 623, 624, 625, 1, 100_003, 2000):
            a = torch.empty(n, dtype=torch.int32).random_(0, 1 << 24, generator=theirs)
            b = _fused.random_24_(torch.empty(n, dtype=torch.int32), ours)
            assert torch.equal(a, b), (seed, n)
        assert torch.equal(theirs.get_state(), ours.get_state())
        assert torch.equal(torch.rand(50, generator=theirs), torch.rand(50, generator=ours))


def _chip_bits(model, w: torch.Tensor, times: tuple[float, ...], drop_q: bool) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(17)
    work = Workspace()
    state = model.program_into(w, g, work)
    if drop_q:  # a state without Q_s (computed at read time)
        state.tensors.pop("q")
    out = [t.clone() for t in state.tensors.values()]
    for t in times:
        read = torch.empty_like(w)
        model.read_into(state, t, g, read, work)
        out.append(read)
    return out


@pytest.mark.parametrize("name,kwargs,drop_q", [
    ("pcm", {}, False),
    ("pcm", {"prog_noise_scale": 1.7, "drift_scale": 0.6, "read_noise_scale": 2.5, "g_max": 18.0}, True),
    ("pcm", {"prog_coeff": (0.3,)}, False),  # a constant programming noise
    ("hermes", {}, False),
])
def test_power_law_physics_is_the_torch_op_bits(name, kwargs, drop_q, monkeypatch):
    """Programming (σ_prog, g_prog, ν, Q_s) and reading (drift, read noise) compiled per law: the same bits as
    the torch-op forms, incl. exact zeros (clamped conductances) and t = 0 (no drift)."""
    from device_models.registry import get

    model = get(name, **kwargs)
    w = _inputs(2, 200_003, -1.0, 1.0).reshape(-1, 1)
    w[::97] = 0.0
    fused = _chip_bits(model, w, (0.0, 1.0, 86400.0, 3.15e7), drop_q)
    with monkeypatch.context() as m:
        m.setattr(_fused, "ENABLED", False)
        plain = _chip_bits(model, w, (0.0, 1.0, 86400.0, 3.15e7), drop_q)
    for a, b in zip(fused, plain, strict=True):
        _same_bits(a, b)
    assert (fused[0] == 0).any(), "the test should cover clamped (zero) conductances"


@pytest.mark.parametrize("fill", [None, 0.0, 3e-8, float("nan")])
def test_pair_mapping_is_the_torch_op_bits(fill, monkeypatch):
    """Weights → (g+, g-) → weights compiled: the same scale and bits, also for an all-zero / tiny tile (the
    ZERO_CLIP floor) and NaN weights (propagated, as torch's max does)."""
    from device_models.pcm import PCM

    model = PCM()
    w = _inputs(4, 70_007, -0.3, 0.2).reshape(7, -1)
    if fill is not None:
        w[:] = fill if fill == fill else 0.0
        if fill != fill:
            w[3, 5] = fill

    def mapped(v: torch.Tensor):
        g, scale, _ = model.to_conductances(v, Workspace())
        g = g.clone()
        return g, scale, model.to_weights(g, type("S", (), {"scale": scale, "offset": 0.0})())

    gf, sf, wf = mapped(w.clone())
    with monkeypatch.context() as m:
        m.setattr(_fused, "ENABLED", False)
        gp, sp, wp = mapped(w.clone())
    if fill != fill:  # a NaN weight makes the whole tile NaN in both (NaN payload bits carry no meaning)
        assert sf != sf and sp != sp and gf.isnan().all() and gp.isnan().all() and wf.isnan().all()
        return
    assert sf == sp
    _same_bits(gf, gp)
    _same_bits(wf, wp)
