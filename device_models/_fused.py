"""The portable kernels compiled with numba for CPU tensors: the same bits, 3–5× faster.

:mod:`device_models.portable` builds ``ln``, ``e^x``, Box–Muller normals and exact sums from one torch op at a
time (one IEEE rounding each), which costs a pass over each chunk per operation. The functions here run the
**same operations in the same order** on each element inside one compiled loop: float32 throughout, every
constant rounded to float32 as torch rounds a Python scalar, no fast-math (so LLVM neither contracts a
multiply and an add into an FMA nor reorders anything), integer sums in int64. Vectorisation only changes how
many elements run at once, never an element's result, so the bits are those of the torch-op forms on every CPU
(``tests/test_fused_kernels.py`` checks both against each other, also for numba's ``haswell`` and ``generic``
code generation, and the chip fingerprints hold with and without them). torch's Mersenne Twister (the
integers behind every draw) also runs here, continued from and written back to the ``Generator``'s state:
the same integers as ``random_`` and the same state after, at about 10× its speed (0.24 vs 2.7–4.3 ns per integer on one core; the layout is checked at import).

The element-wise laws of the power-law drift models (σ_prog and the programmed conductances, the drift
exponents, PCM's ln-lines and Q_s, drift plus read noise, the differential-pair mapping both ways) run here too,
one compiled pass per law with the same float32 operations in the same order as their torch-op forms in
:mod:`device_models.conductance` / :mod:`device_models.pcm` (``test_power_law_physics_is_the_torch_op_bits``).

Used for contiguous float32 CPU tensors when numba is importable and ``ANALOG_PEFT_FUSED`` is not ``0``
(:data:`ENABLED`); everything else (GPU tensors, no numba) takes the torch-op forms: a chip's seed gives the
same chip either way.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor

try:  # pragma: no cover - import guard
    import numba
except ImportError:  # pragma: no cover - numba is in the lock file; the torch-op forms are the fallback
    numba = None

#: numba kernels in use (numba importable and ``ANALOG_PEFT_FUSED`` not ``0``)
ENABLED = numba is not None and os.environ.get("ANALOG_PEFT_FUSED", "1") != "0"

_CHUNK = 16384  # elements per inner block: the scratch stays in L1/L2

f32 = np.float32
# the constants of device_models.portable, rounded to float32 as torch rounds a Python scalar operand
_LOG_LN2_HI, _LOG_LN2_LO = f32(6.9313812256e-01), f32(9.0580006145e-06)
_LG1, _LG2, _LG3, _LG4 = f32(0.66666662693), f32(0.40000972152), f32(0.28498786688), f32(0.24279078841)
_EXP_LN2_HI, _EXP_LN2_LO, _INV_LN2 = f32(6.9314575195e-01), f32(1.4286067653e-06), f32(1.4426950216)
_P1, _P2 = f32(1.6666625440e-1), f32(-2.7667332906e-3)
_X_MIN, _X_MAX = f32(-87.0), f32(88.0)
_S1, _S2, _S3, _S4 = f32(-1.0 / 6.0), f32(1.0 / 120.0), f32(-1.0 / 5040.0), f32(1.0 / 362880.0)
_C1, _C2, _C3, _C4, _C5 = f32(-0.5), f32(1.0 / 24.0), f32(-1.0 / 720.0), f32(1.0 / 40320.0), f32(-1.0 / 3628800.0)
_HALF_PI = f32(math.pi / 2)
_U = f32(2.0**-24)
_ONE, _TWO, _HALF, _MINUS_TWO = f32(1.0), f32(2.0), f32(0.5), f32(-2.0)
_MAGIC = f32(12582912.0)  # 1.5 · 2^23: (v + MAGIC) - MAGIC rounds v to an integer (ties to even), exactly


def _jit(fn):
    if numba is None:  # pragma: no cover
        return fn
    return numba.njit(fastmath=False, error_model="numpy", boundscheck=False, nogil=True, cache=True)(fn)


@_jit
def _log_block(x, xi, k):  # pragma: no cover - compiled
    """``x ← ln x`` on one block (``xi``: ``x``'s int32 view; ``k``: int32 scratch) — portable._log_chunk."""
    n = x.size
    for j in range(n):  # musl's branch-free reduction: x = 2^k · m, m in [√2/2, √2)
        b = xi[j] + np.int32(0x3F800000 - 0x3F3504F3)
        k[j] = (b >> np.int32(23)) - np.int32(127)
        xi[j] = (b & np.int32(0x007FFFFF)) + np.int32(0x3F3504F3)
    for j in range(n):
        f = x[j] - _ONE
        s = f / (f + _TWO)
        z = s * s
        w = z * z
        t1 = (w * _LG4 + _LG2) * w
        t2 = (w * _LG3 + _LG1) * z
        hfsq = (f * f) * _HALF
        kf = f32(k[j])
        r = ((t1 + t2) + hfsq) * s + kf * _LOG_LN2_LO
        x[j] = kf * _LOG_LN2_HI - ((hfsq - r) - f)


@_jit
def _exp_block(x, s, si):  # pragma: no cover - compiled
    """``x ← e^x`` on one block (``s``: float32 scratch, ``si`` its int32 view) — portable._exp_chunk."""
    n = x.size
    for j in range(n):
        v = x[j]
        v = _X_MIN if v < _X_MIN else v
        v = _X_MAX if v > _X_MAX else v
        k = (v * _INV_LN2 + _MAGIC) - _MAGIC  # round(v / ln2): |v / ln2| < 2^22
        hi = v - k * _EXP_LN2_HI
        lo = k * _EXP_LN2_LO
        r = hi - lo
        t = r * r
        c = r - (t * _P2 + _P1) * t
        x[j] = _ONE - ((lo - (r * c) / (_TWO - c)) - hi)
        s[j] = k + _MAGIC  # its bits are 0x4B400000 + k
    for j in range(n):
        si[j] = (si[j] - np.int32(0x4B400000 - 127)) << np.int32(23)  # 2^k
    for j in range(n):
        x[j] = x[j] * s[j]


@_jit
def _log_all(x):  # pragma: no cover - compiled
    xi = x.view(np.int32)
    k = np.empty(_CHUNK, np.int32)
    for a in range(0, x.size, _CHUNK):
        b = min(a + _CHUNK, x.size)
        _log_block(x[a:b], xi[a:b], k[: b - a])


@_jit
def _exp_all(x):  # pragma: no cover - compiled
    s = np.empty(_CHUNK, np.float32)
    si = s.view(np.int32)
    for a in range(0, x.size, _CHUNK):
        b = min(a + _CHUNK, x.size)
        _exp_block(x[a:b], s[: b - a], si[: b - a])


@_jit
def _pow_all(x, p):  # pragma: no cover - compiled
    """``x ← exp(p · ln x)`` block by block (``p`` float32)."""
    xi = x.view(np.int32)
    k = np.empty(_CHUNK, np.int32)
    s = np.empty(_CHUNK, np.float32)
    si = s.view(np.int32)
    for a in range(0, x.size, _CHUNK):
        b = min(a + _CHUNK, x.size)
        _pow_block(x[a:b], xi[a:b], k[: b - a], s[: b - a], si[: b - a], p)


@_jit
def _pow_block(x, xi, k, s, si, p):  # pragma: no cover - compiled
    """``x ← exp(p · ln x)`` on one block (scratch as :func:`_log_block` and :func:`_exp_block`)."""
    _log_block(x, xi, k)
    for j in range(x.size):
        x[j] = x[j] * p
    _exp_block(x, s, si)


@_jit
def _radius_sq(r, ints, k):  # pragma: no cover - compiled
    """``r ← -2 ln u1``, ``u1 = (ints + 1) / 2^24`` — the first half of portable.normal_'s pair math."""
    for j in range(r.size):
        r[j] = (f32(ints[j]) + _ONE) * _U  # u1 in (0, 1]
    _log_block(r, r.view(np.int32), k)
    for j in range(r.size):
        r[j] = r[j] * _MINUS_TWO


@_jit
def _unit_vector_times(out_c, out_s, rad, u2, c, s):  # pragma: no cover - compiled
    """``out_c = rad · cos 4φ``, ``out_s = rad · sin 4φ`` (``out_s`` may be one shorter), φ from the ints ``u2``
    — portable._sincos_chunk; ``c``, ``s``: float32 scratch."""
    for j in range(rad.size):
        phi = (((f32(u2[j]) + _HALF) * _U) - _HALF) * _HALF_PI
        p2 = phi * phi
        cj = ((((((((p2 * _C5 + _C4) * p2) + _C3) * p2 + _C2) * p2) + _C1) * p2) + _ONE)
        sj = ((((p2 * _S4 + _S3) * p2 + _S2) * p2 + _S1) * p2) * phi + phi
        for _ in range(2):  # (cos 2a, sin 2a) = ((c − s)(c + s), 2 s c)
            d = cj - sj
            e = cj + sj
            sj = (sj * cj) * _TWO
            cj = d * e
        c[j] = cj
        s[j] = sj
    for j in range(out_c.size):
        out_c[j] = rad[j] * c[j]
    for j in range(out_s.size):
        out_s[j] = rad[j] * s[j]


@_jit
def _fixed_point_sum(x, scale):  # pragma: no cover - compiled
    """``sum(int32(trunc(x · scale)))`` in int64 (``scale`` float32) — portable.exact_sum's inner loop."""
    total = np.int64(0)
    for j in range(x.size):
        total += np.int64(np.int32(np.trunc(x[j] * scale)))
    return total


@_jit
def _fixed_point_abs_sum(x, scale):  # pragma: no cover - compiled
    """``sum(int32(trunc(|x| · scale)))`` in int64 — portable.exact_sum of ``|x|`` without an ``|x|`` buffer."""
    total = np.int64(0)
    for j in range(x.size):
        total += np.int64(np.int32(np.trunc(abs(x[j]) * scale)))
    return total


@_jit
def _abs_max(x):  # pragma: no cover - compiled
    top = f32(0.0)
    nan = False
    for j in range(x.size):
        v = abs(x[j])
        nan |= v != v
        top = v if v > top else top
    return f32(np.nan) if nan else top  # as torch's max, a NaN anywhere gives NaN


# -- the differential-pair mapping (device_models.conductance.ConductanceModel) --------------------------------


@_jit
def _pair_targets(w, scale, g_max, g):  # pragma: no cover - compiled
    """``g[:n] ← clamp(w·scale, 0, g_max)``, ``g[n:] ← clamp(-(w·scale), 0, g_max)`` (``n = w.size``)."""
    n = w.size
    zero = f32(0.0)
    for j in range(n):
        v = w[j] * scale
        p = zero if v < zero else v
        g[j] = g_max if g_max < p else p
        m = -v
        m = zero if m < zero else m
        g[n + j] = g_max if g_max < m else m


@_jit
def _pair_weights(g, scale, out):  # pragma: no cover - compiled
    """``out ← (g[:n] - g[n:]) / scale``."""
    n = out.size
    for j in range(n):
        out[j] = (g[j] - g[n + j]) / scale


# -- the power-law drift physics (device_models.conductance, device_models.pcm), one pass per law ---------------


@_jit
def _program_targets(gt, xi, gp, grel, coeffs, g_max, sig_scale, pns, use_pns, zero_clip):  # pragma: no cover
    """PowerLawDriftModel.program_conductances' first loop: ``gp ← max(0, g_T + σ_prog(g_T)·[pns]·ξ)``,
    ``grel ← max(ZERO_CLIP, |g_T / g_max|)``, σ_prog by Horner's scheme in ``g_T / g_max`` (``coeffs``
    ascending, float32); ``gp`` and ``grel`` double as the block's scratch, as in the torch-op form."""
    nc = coeffs.size
    zero = f32(0.0)
    for a in range(0, gt.size, _CHUNK):
        b = min(a + _CHUNK, gt.size)
        g, x, v, e = gt[a:b], gp[a:b], grel[a:b], xi[a:b]
        for j in range(b - a):
            x[j] = g[j] / g_max
        if nc == 1:
            v[:] = coeffs[0]
        else:
            for j in range(b - a):
                v[j] = x[j] * coeffs[nc - 1] + coeffs[nc - 2]
            for i in range(nc - 3, -1, -1):
                c = coeffs[i]
                for j in range(b - a):
                    v[j] = v[j] * x[j] + c
        for j in range(b - a):
            sj = v[j] * sig_scale
            if use_pns:
                sj = sj * pns
            p = g[j] + sj * e[j]
            x[j] = zero if p < zero else p
            r = abs(g[j] / g_max)
            v[j] = zero_clip if r < zero_clip else r


@_jit
def _abs_nu(nu, sig, xi, ds, use_ds):  # pragma: no cover - compiled
    """``ν ← |μ + σ·ξ| [· drift_scale]`` in place of ``μ`` (``sig`` is overwritten by ``σ·ξ``)."""
    for j in range(nu.size):
        d = sig[j] * xi[j]
        sig[j] = d
        v = abs(nu[j] + d)
        nu[j] = v * ds if use_ds else v


@_jit
def _clipped_lines_of_log(x, zero_clip, law1, out1, law2, out2):  # pragma: no cover - compiled
    """``x ← ln max(x, ZERO_CLIP)``; ``out_i ← clamp(slope_i · x + intercept_i, lo_i, hi_i)`` for
    ``law_i = (slope, intercept, lo, hi)`` (float32) — PCM's drift-exponent statistics."""
    xi = x.view(np.int32)
    k = np.empty(_CHUNK, np.int32)
    for a in range(0, x.size, _CHUNK):
        b = min(a + _CHUNK, x.size)
        blk = x[a:b]
        for j in range(b - a):
            blk[j] = zero_clip if blk[j] < zero_clip else blk[j]
        _log_block(blk, xi[a:b], k[: b - a])
        _clipped_line(blk, law1, out1[a:b])
        _clipped_line(blk, law2, out2[a:b])


@_jit
def _clipped_line(x, law, out):  # pragma: no cover - compiled
    slope, intercept, lo, hi = law[0], law[1], law[2], law[3]
    for j in range(x.size):
        v = x[j] * slope + intercept
        v = lo if v < lo else v
        out[j] = hi if hi < v else v


@_jit
def _capped_inverse_power(gp, q, g_max, p, lo, c, hi):  # pragma: no cover - compiled
    """``q ← min(hi, c · 1/max(lo, (|gp| / g_max)^p))`` — PCM's 1/f read-noise amplitude Q_s."""
    qi = q.view(np.int32)
    k = np.empty(_CHUNK, np.int32)
    s = np.empty(_CHUNK, np.float32)
    si = s.view(np.int32)
    one = f32(1.0)
    for a in range(0, q.size, _CHUNK):
        b = min(a + _CHUNK, q.size)
        blk = q[a:b]
        g = gp[a:b]
        for j in range(b - a):
            blk[j] = abs(g[j]) / g_max
        _pow_block(blk, qi[a:b], k[: b - a], s[: b - a], si[: b - a], p)
        for j in range(b - a):
            v = blk[j]
            v = lo if v < lo else v
            v = (one / v) * c
            blk[j] = hi if hi < v else v


@_jit
def _drift_read(gp, nu, q, xi, out, neg_log_ratio, accumulated, rns, use_rns, drift):  # pragma: no cover
    """PowerLawDriftModel.read_conductances: ``g_d = g_prog · exp(-ν · L)`` (``g_prog`` if not ``drift``),
    ``out ← max(0, g_d + (|g_d| [· rns]) · (Q_s · accumulated) · ξ)``."""
    d = np.empty(_CHUNK, np.float32)
    s = np.empty(_CHUNK, np.float32)
    si = s.view(np.int32)
    zero = f32(0.0)
    for a in range(0, gp.size, _CHUNK):
        b = min(a + _CHUNK, gp.size)
        m = b - a
        g, blk = gp[a:b], d[:m]
        if drift:
            n_ = nu[a:b]
            for j in range(m):
                blk[j] = n_[j] * neg_log_ratio
            _exp_block(blk, s[:m], si[:m])
            for j in range(m):
                blk[j] = g[j] * blk[j]
        else:
            blk[:] = g
        qq, e, o = q[a:b], xi[a:b], out[a:b]
        for j in range(m):
            v = abs(blk[j])
            if use_rns:
                v = v * rns
            v = (v * (qq[j] * accumulated)) * e[j]
            v = blk[j] + v
            o[j] = zero if v < zero else v


# -- torch's Mersenne Twister, continued from a Generator's state ---------------------------------------------
_N, _M = 624, 397
_MATRIX_A, _UPPER, _LOWER = np.uint32(0x9908B0DF), np.uint32(0x80000000), np.uint32(0x7FFFFFFF)


_U32 = np.uint32


@_jit
def _twist(mt):  # pragma: no cover - compiled
    """MT19937's state transition (ATen's ``mt19937::next_state``), branch-free; every step cast back to uint32
    (numba widens integer arithmetic to 64 bits otherwise, which halves the vector width)."""
    one = _U32(1)
    for k in range(_N - _M):
        y = _U32((mt[k] & _UPPER) | (mt[k + 1] & _LOWER))
        mt[k] = _U32(mt[k + _M] ^ _U32(y >> one) ^ _U32(_U32(y & one) * _MATRIX_A))
    for k in range(_N - _M, _N - 1):
        y = _U32((mt[k] & _UPPER) | (mt[k + 1] & _LOWER))
        mt[k] = _U32(mt[k + _M - _N] ^ _U32(y >> one) ^ _U32(_U32(y & one) * _MATRIX_A))
    y = _U32((mt[_N - 1] & _UPPER) | (mt[0] & _LOWER))
    mt[_N - 1] = _U32(mt[_M - 1] ^ _U32(y >> one) ^ _U32(_U32(y & one) * _MATRIX_A))


@_jit
def _mt_fill(out, mt, left, nxt, mask):  # pragma: no cover - compiled
    """``out[i] = mask & (next tempered output)``, as ATen's ``mt19937::operator()``; returns (left, next).
    The tempering runs on up to 624 words at a time, in uint32 lanes."""
    n = out.size
    i = 0
    while i < n:
        left -= 1
        if left == 0:
            _twist(mt)
            left = _N
            nxt = 0
        m = min(n - i, left)
        src, dst = mt[nxt : nxt + m], out[i : i + m]
        for j in range(m):
            y = src[j]
            y = _U32(y ^ _U32(y >> _U32(11)))
            y = _U32(y ^ _U32(_U32(y << _U32(7)) & _U32(0x9D2C5680)))
            y = _U32(y ^ _U32(_U32(y << _U32(15)) & _U32(0xEFC60000)))
            y = _U32(y ^ _U32(y >> _U32(18)))
            dst[j] = np.int32(y & mask)
        nxt += m
        left -= m - 1
        i += m
    return left, nxt


#: byte layout of ``torch.Generator.get_state()`` on CPU (ATen's ``CPUGeneratorImplState``): ``left_`` (int32)
#: at 8, ``next_`` (uint32) at 16, the 624 state words (one uint64 each) from 24; checked by :func:`_mt_layout_ok`
_STATE_BYTES, _LEFT, _NEXT, _WORDS = 5056, 8, 16, 24


def _random_24(out: np.ndarray, generator: torch.Generator) -> None:
    state = generator.get_state().numpy().copy()
    left, nxt = int(state[_LEFT : _LEFT + 4].view(np.int32)[0]), int(state[_NEXT : _NEXT + 4].view(np.uint32)[0])
    words = state[_WORDS : _WORDS + 8 * _N].view(np.uint64)
    mt = words.astype(np.uint32)
    left, nxt = _mt_fill(out, mt, np.int64(left), np.int64(nxt), np.uint32(0xFFFFFF))
    state[_LEFT : _LEFT + 4].view(np.int32)[0] = left
    state[_NEXT : _NEXT + 4].view(np.uint32)[0] = nxt
    words[:] = mt
    generator.set_state(torch.from_numpy(state))


def _mt_layout_ok() -> bool:
    """Whether this torch's generator state has the layout above: the same draws as ``random_``, and torch's
    own draws continue where these stopped."""
    if not ENABLED:
        return False
    try:
        if torch.Generator().get_state().numel() != _STATE_BYTES:
            return False
        theirs, ours = torch.Generator().manual_seed(20261203), torch.Generator().manual_seed(20261203)
        for n in (1, 700, 623, 1300):
            a = torch.empty(n, dtype=torch.int32).random_(0, 1 << 24, generator=theirs)
            b = np.empty(n, np.int32)
            _random_24(b, ours)
            if not np.array_equal(a.numpy(), b):
                return False
        return torch.equal(torch.randn(8, generator=theirs), torch.randn(8, generator=ours))
    except Exception:  # noqa: BLE001 - any surprise means: use torch's own random_
        return False


#: the Mersenne Twister runs compiled (the generator state layout checked against torch at import)
MT_ENABLED = _mt_layout_ok()


def random_24_(ints: Tensor, generator: torch.Generator) -> Tensor:
    """``ints.random_(0, 2**24, generator=generator)``: the same values and the same generator state after,
    compiled when :data:`MT_ENABLED` (contiguous int32 CPU ``ints``, CPU generator)."""
    if MT_ENABLED and ints.device.type == "cpu" and ints.is_contiguous() and generator.device.type == "cpu":
        _random_24(ints.view(-1).numpy(), generator)
        return ints
    return ints.random_(0, 1 << 24, generator=generator)


def usable(x: Tensor) -> bool:
    """Whether the compiled kernels can work on ``x`` in place (contiguous float32 on the CPU)."""
    return ENABLED and x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous()


def _np(x: Tensor) -> np.ndarray:
    return x.detach().view(-1).numpy()


def log_(x: Tensor) -> None:
    _log_all(_np(x))


def exp_(x: Tensor) -> None:
    _exp_all(_np(x))


def pow_(x: Tensor, p: float) -> None:
    _pow_all(_np(x), f32(p))


def normal_from_ints_(x: Tensor, ints: Tensor, rad: Tensor, k: Tensor, c: Tensor, sn: Tensor) -> None:
    """``x`` ← the Box–Muller normals of ``ints`` (int32, ``2·ceil(n/2)`` values below 2^24), block by block;
    ``rad``, ``c``, ``sn`` (float32) and ``k`` (int32) are scratch of at least one block.

    The radius' square root is torch's ``sqrt_``: on this torch (MKL VML) it is not the correctly rounded
    float32 square root (about 15 % of results differ by 1 ulp) but it is the same on every ISA, so the chip
    scheme is defined with it and the compiled loops run on either side of it."""
    out, iv = _np(x), ints.view(-1).numpy()
    n, h = x.numel(), (x.numel() + 1) // 2
    step = min(rad.numel(), k.numel(), c.numel(), sn.numel())
    for a in range(0, h, step):
        b = min(a + step, h)
        r = rad[: b - a]
        _radius_sq(r.numpy(), iv[a:b], k[: b - a].numpy())
        r.sqrt_()
        _unit_vector_times(out[a:b], out[h + a : min(h + b, n)], r.numpy(), iv[h + a : h + b],
                           c[: b - a].numpy(), sn[: b - a].numpy())


def fixed_point_sum(x: Tensor, scale: float, absolute: bool = False) -> int:
    """The integer sum of ``trunc(x · scale)`` (of ``|x|`` if ``absolute``)."""
    return int((_fixed_point_abs_sum if absolute else _fixed_point_sum)(_np(x), f32(scale)))


def abs_max(x: Tensor) -> float:
    return float(_abs_max(_np(x)))


def _f32s(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).astype(np.float32)


def program_targets_(gt: Tensor, xi: Tensor, gp: Tensor, grel: Tensor, coeffs: tuple[float, ...], g_max: float,
                     sig_scale: float, pns: float, zero_clip: float) -> None:
    _program_targets(_np(gt), _np(xi), _np(gp), _np(grel), _f32s(coeffs), f32(g_max), f32(sig_scale), f32(pns),
                     pns != 1.0, f32(zero_clip))


def abs_nu_(nu: Tensor, sig: Tensor, xi: Tensor, drift_scale: float) -> None:
    _abs_nu(_np(nu), _np(sig), _np(xi), f32(drift_scale), drift_scale != 1.0)


def clipped_lines_of_log_(x: Tensor, zero_clip: float, law1: tuple[float, ...], out1: Tensor,
                          law2: tuple[float, ...], out2: Tensor) -> None:
    _clipped_lines_of_log(_np(x), f32(zero_clip), _f32s(law1), _np(out1), _f32s(law2), _np(out2))


def capped_inverse_power_(gp: Tensor, q: Tensor, g_max: float, p: float, lo: float, c: float, hi: float) -> None:
    _capped_inverse_power(_np(gp), _np(q), f32(g_max), f32(p), f32(lo), f32(c), f32(hi))


def drift_read_(gp: Tensor, nu: Tensor, q: Tensor, xi: Tensor, out: Tensor, log_ratio: float | None,
                accumulated: float, rns: float) -> None:
    """``log_ratio``: ``ln((t + t0)/t0)``, ``None`` at ``t = 0`` (no drift)."""
    drift = log_ratio is not None
    _drift_read(_np(gp), _np(nu), _np(q), _np(xi), _np(out), f32(-log_ratio if drift else 0.0), f32(accumulated),
                f32(rns), rns != 1.0, drift)


def pair_targets_(w: Tensor, scale: float, g_max: float, g: Tensor) -> None:
    _pair_targets(_np(w), f32(scale), f32(g_max), _np(g))


def pair_weights_(g: Tensor, scale: float, out: Tensor) -> None:
    _pair_weights(_np(g), f32(scale), _np(out))
