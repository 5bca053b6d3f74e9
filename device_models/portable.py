"""Portable float32 math: the same bits on every CPU vector ISA, thread count and chunking.

torch's ``randn``, ``log``, ``exp`` and ``pow`` are vectorised with ISA-specific kernels (SLEEF on AVX2 /
AVX-512, libm in the ``default`` kernels; the scalar tail of each thread's range takes yet another path),
so their last bits depend on the CPU and on ``torch.get_num_threads()``; float reductions (``sum``,
``mean``, ``std``) depend on the order in which vector lanes and threads add up. A chip that is a pure
function of its seed must not use them. Everything here is built from IEEE-754 operations that are
correctly rounded on every ISA (``+ - * /``, comparisons, ``abs``, ``clamp``, ``round``, integer and bit
operations), one torch op at a time (so no compiler fuses two roundings into an FMA), torch's float32
``sqrt`` (on this CPU build it is MKL VML's, **not** correctly rounded — about 15 % of results are 1 ulp off —
but the same on every ISA: ``tests/test_chip_fingerprints.py`` runs under the default, AVX2 and AVX-512
kernels), and the integer stream of the ``torch.Generator`` (serial Mersenne Twister on CPU):

* :func:`normal_` — Box–Muller from 24-bit uniforms: ``r = sqrt(-2 ln u1)``, angle from ``u2``;
  no ``where``/comparisons (torch's are slow): branch-free reductions only;
* :func:`log_` / :func:`exp_` — fdlibm's ``logf`` / ``expf`` reductions and polynomials (< 1 ulp);
* :func:`pow_` (``x^p``) and :func:`scalar_pow_` (``b^x``) as ``exp(p · ln x)``;
* :func:`exact_sum` — the sum of float32 values in 31-bit integer fixed point (independent of order);
* :func:`py_log` — a scalar ``ln`` in pure Python arithmetic (CPython's ``math.log`` is the C library's,
  whose FMA and non-FMA variants may differ in the last bit).

The in-place kernels run chunk by chunk (:data:`CHUNK` elements) in a :class:`Workspace`'s reusable
buffers; the chunking and the thread count change nothing in the result. On CPU tensors the same operations
run compiled, element by element (:mod:`device_models._fused`, numba without fast-math; the physics laws of
:mod:`device_models.conductance` and :mod:`device_models.pcm` likewise): the same bits, 3–5× faster; the torch-op forms here are the definition, the fallback and what GPUs run. Domains: ``log_`` takes
positive normal floats, ``exp_`` clamps its argument to ``[-87, 88]`` (results ``>= 1.6e-38``),
``normal_`` gives ``|z| <= 5.77`` (24-bit uniforms, as torch's own ``randn``).

These draws and formulas are the chip scheme :data:`SCHEME`, recorded in every run manifest; changing
any of them is a new scheme (and every published chip table must be redone).
"""

from __future__ import annotations

import math

import torch
from torch import Generator, Tensor

from device_models import _fused
from device_models._workspace import CHUNK, Workspace, chunks

#: Name of the chip scheme (draws + formulas) recorded in run manifests; bump on any change of them.
SCHEME = "portable-1"

# fdlibm e_logf.c (FreeBSD): ln x = k ln2 + ln(1+f), ln(1+f) = f - f²/2 + s(f²/2 + R(s²)), s = f/(2+f)
_LOG_LN2_HI = 6.9313812256e-01
_LOG_LN2_LO = 9.0580006145e-06
_LG1, _LG2, _LG3, _LG4 = 0.66666662693, 0.40000972152, 0.28498786688, 0.24279078841
_SQRT2 = 1.4142135
# fdlibm e_expf.c: x = k ln2 + r, e^r = 1 - ((lo - r c / (2 - c)) - hi), c = r - r²(P1 + r² P2)
_EXP_LN2_HI = 6.9314575195e-01
_EXP_LN2_LO = 1.4286067653e-06
_INV_LN2 = 1.4426950216
_P1, _P2 = 1.6666625440e-1, -2.7667332906e-3
_X_MIN, _X_MAX = -87.0, 88.0
# sin / cos on [-π/4, π/4]: Taylor series to x^9 / x^10 (truncation < 2e-9)
_SIN = (-1.0 / 6.0, 1.0 / 120.0, -1.0 / 5040.0, 1.0 / 362880.0)
_COS = (-0.5, 1.0 / 24.0, -1.0 / 720.0, 1.0 / 40320.0, -1.0 / 3628800.0)
_HALF_PI = math.pi / 2
_BITS = 24  # uniform resolution


def _flat(x: Tensor) -> Tensor:
    if x.dtype != torch.float32 or not x.is_contiguous():
        raise TypeError(f"portable kernels work in place on contiguous float32 tensors, got {x.dtype}")
    return x.view(-1)


def _scratch(work: Workspace, like: Tensor, n: int, **dtypes: torch.dtype) -> list[Tensor]:
    size = min(n, CHUNK) if like.device.type == "cpu" else n
    return [work.get(f"portable.{name}", (size,), like, dtype) for name, dtype in dtypes.items()]


_F, _I = torch.float32, torch.int32


# -- ln -------------------------------------------------------------------------------------------------


def _log_chunk(x: Tensor, f: Tensor, s: Tensor, z: Tensor, w: Tensor, i: Tensor) -> None:
    """``x ← ln x`` for positive normal float32 ``x`` (fdlibm ``logf`` with musl's branch-free reduction
    of the mantissa to [√2/2, √2)); the other tensors are scratch."""
    bits = x.view(_I)
    bits.add_(0x3F800000 - 0x3F3504F3)
    torch.bitwise_right_shift(bits, 23, out=i)
    i.sub_(127)  # k: x = 2^k · m
    bits.bitwise_and_(0x007FFFFF)
    bits.add_(0x3F3504F3)  # x ← m in [√2/2, √2)
    torch.sub(x, 1.0, out=f)  # f = m - 1, exact
    torch.add(f, 2.0, out=s)
    torch.div(f, s, out=s)  # s = f / (2 + f)
    torch.mul(s, s, out=z)  # z = s²
    torch.mul(z, z, out=w)  # w = z²
    torch.mul(w, _LG4, out=x)  # t1 = w (Lg2 + w Lg4)
    x.add_(_LG2)
    x.mul_(w)
    w.mul_(_LG3)  # t2 = z (Lg1 + w Lg3)
    w.add_(_LG1)
    w.mul_(z)
    x.add_(w)  # R = t2 + t1
    torch.mul(f, f, out=z)  # hfsq = f²/2
    z.mul_(0.5)
    x.add_(z)  # ln = k ln2_hi - ((hfsq - (s (hfsq + R) + k ln2_lo)) - f)
    x.mul_(s)
    w.copy_(i)  # k as float, exact
    s.copy_(w)
    w.mul_(_LOG_LN2_LO)
    x.add_(w)
    torch.sub(z, x, out=x)
    x.sub_(f)
    s.mul_(_LOG_LN2_HI)
    torch.sub(s, x, out=x)


def log_(x: Tensor, work: Workspace) -> Tensor:
    """``x ← ln x`` in place (positive normal float32 values)."""
    flat = _flat(x)
    if _fused.usable(flat):
        _fused.log_(flat)
        return x
    n = flat.numel()
    scratch = _scratch(work, flat, n, f=_F, s=_F, z=_F, w=_F, i=_I)
    for sl in chunks(n, flat.device):
        k = sl.stop - sl.start
        _log_chunk(flat[sl], *(b[:k] for b in scratch))
    return x


# -- exp ------------------------------------------------------------------------------------------------


def _exp_chunk(x: Tensor, k: Tensor, hi: Tensor, lo: Tensor, c: Tensor, t: Tensor, ki: Tensor) -> None:
    """``x ← e^x`` for float32 ``x`` clamped to ``[-87, 88]`` (fdlibm ``expf``); the rest are scratch."""
    x.clamp_(_X_MIN, _X_MAX)
    torch.mul(x, _INV_LN2, out=k)
    k.round_()  # k = round(x / ln2), exact
    torch.mul(k, _EXP_LN2_HI, out=hi)  # exact (ln2_hi has trailing zero bits)
    torch.sub(x, hi, out=hi)  # hi = x - k ln2_hi
    torch.mul(k, _EXP_LN2_LO, out=lo)
    torch.sub(hi, lo, out=x)  # r = hi - lo
    torch.mul(x, x, out=t)  # c = r - r²(P1 + r² P2)
    torch.mul(t, _P2, out=c)
    c.add_(_P1)
    c.mul_(t)
    torch.sub(x, c, out=c)
    torch.mul(x, c, out=t)  # e^r = 1 - ((lo - r c / (2 - c)) - hi)
    c.neg_()
    c.add_(2.0)
    t.div_(c)
    torch.sub(lo, t, out=t)
    t.sub_(hi)
    t.neg_()
    t.add_(1.0)
    ki.copy_(k)  # 2^k built from its bits: exact
    ki.add_(127)
    ki.bitwise_left_shift_(23)
    torch.mul(t, ki.view(_F), out=x)


def exp_(x: Tensor, work: Workspace) -> Tensor:
    """``x ← e^x`` in place (float32; the argument is clamped to ``[-87, 88]``)."""
    flat = _flat(x)
    if _fused.usable(flat):
        _fused.exp_(flat)
        return x
    n = flat.numel()
    scratch = _scratch(work, flat, n, k=_F, hi=_F, lo=_F, c=_F, t=_F, ki=_I)
    for sl in chunks(n, flat.device):
        k = sl.stop - sl.start
        _exp_chunk(flat[sl], *(b[:k] for b in scratch))
    return x


def pow_(x: Tensor, p: float, work: Workspace) -> Tensor:
    """``x ← x^p`` in place for positive normal float32 ``x``: ``exp(p · ln x)``."""
    if _fused.usable(_flat(x)):
        _fused.pow_(x, p)
        return x
    log_(x, work)
    for sl in chunks(x.numel(), x.device):
        x.view(-1)[sl].mul_(p)
    return exp_(x, work)


def scalar_pow_(base: float, x: Tensor, work: Workspace) -> Tensor:
    """``x ← base^x`` in place (``base > 0``): ``exp(x · ln base)`` with a portable scalar ``ln``."""
    if not base > 0:
        raise ValueError(f"scalar_pow_: base must be > 0, got {base}")
    log_base = py_log(base)
    for sl in chunks(x.numel(), x.device):
        x.view(-1)[sl].mul_(log_base)
    return exp_(x, work)


# -- normal draws -----------------------------------------------------------------------------------------


def _sincos_chunk(u2: Tensor, out_c: Tensor, out_s: Tensor, p2: Tensor, t: Tensor) -> None:
    """Unit vector at a uniform angle from 24-bit ints ``u2`` (overwritten): φ = (u2 + ½)/2^24 · π/2 − π/4
    in (−π/4, π/4), cos φ and sin φ by their series, then the angle doubled twice (4φ covers the circle):
    ``out_c``/``out_s`` get cos 4φ and sin 4φ."""
    phi = t
    phi.copy_(u2)  # exact int → float
    phi.add_(0.5)
    phi.mul_(2.0**-_BITS)
    phi.sub_(0.5)
    phi.mul_(_HALF_PI)
    torch.mul(phi, phi, out=p2)
    torch.mul(p2, _COS[4], out=out_c)  # cos φ = 1 + p2 (C1 + p2 (C2 + ...))
    for coeff in reversed(_COS[:4]):
        out_c.add_(coeff)
        out_c.mul_(p2)
    out_c.add_(1.0)
    torch.mul(p2, _SIN[3], out=out_s)  # sin φ = φ + φ p2 (S1 + p2 (S2 + ...))
    for coeff in reversed(_SIN[:3]):
        out_s.add_(coeff)
        out_s.mul_(p2)
    out_s.mul_(phi)
    out_s.add_(phi)
    for _ in range(2):  # (cos 2a, sin 2a) = ((cos a − sin a)(cos a + sin a), 2 sin a cos a)
        torch.sub(out_c, out_s, out=p2)
        torch.add(out_c, out_s, out=t)
        out_s.mul_(out_c)
        out_s.mul_(2.0)
        torch.mul(p2, t, out=out_c)


def normal_(x: Tensor, generator: Generator, work: Workspace) -> Tensor:
    """Fill float32 ``x`` with standard normal draws from ``generator`` (Box–Muller, same bits anywhere).

    Draws ``2·ceil(n/2)`` 24-bit integers in one pass of the generator; element ``i < h`` and ``h + i``
    (``h = ceil(n/2)``) are the cosine and sine of the pair made of integers ``i`` and ``h + i``.
    """
    flat = _flat(x)
    n = flat.numel()
    if n == 0:
        return x
    h = (n + 1) // 2
    ints = work.get("portable.ints", (2 * h,), flat, _I)
    _fused.random_24_(ints, generator)  # = ints.random_(0, 1 << _BITS, generator=generator)
    if _fused.usable(flat):
        _fused.normal_from_ints_(flat, ints, *_scratch(work, flat, h, r=_F, i=_I, c=_F, s=_F))
        return x
    r_buf, c_buf, s_buf, p2, f, z, w, i = _scratch(work, flat, h, r=_F, c=_F, s=_F, p2=_F, f=_F, z=_F, w=_F, i=_I)
    for sl in chunks(h, flat.device):
        k = sl.stop - sl.start
        r = r_buf[:k]
        r.copy_(ints[sl])  # u1 = (int + 1) / 2^24 in (0, 1]
        r.add_(1.0)
        r.mul_(2.0**-_BITS)
        _log_chunk(r, f[:k], s_buf[:k], z[:k], w[:k], i[:k])
        r.mul_(-2.0)
        r.sqrt_()
        c, s = c_buf[:k], s_buf[:k]
        _sincos_chunk(ints[h + sl.start : h + sl.stop], c, s, p2[:k], f[:k])
        torch.mul(r, c, out=flat[sl])
        hi = min(h + sl.stop, n) - (h + sl.start)
        if hi > 0:
            torch.mul(r[:hi], s[:hi], out=flat[h + sl.start : h + sl.start + hi])
    return x


# -- exact reductions -----------------------------------------------------------------------------------


def exact_sum(x: Tensor, top: float | None = None, absolute: bool = False) -> float:
    """The sum of float32 ``x`` in 31-bit fixed point, independent of order, ISA and threads.

    Each value is truncated (toward 0) to a multiple of ``2^-31 · 2^⌈log2 max|x|⌉`` — exact float32
    ops — and the integers are summed exactly in int64: |error| ≤ n · 2^-31 · max|x| (the sum of a
    tile's |W| to ~1e-9 of max|W| per weight, below float32 resolution of the mean). ``top``: ``max |x|``
    if already known; ``absolute``: the sum of ``|x|``. Raises ``ValueError`` on inf/NaN.
    """
    flat = x.detach().reshape(-1)
    if flat.numel() == 0:
        return 0.0
    if flat.dtype != torch.float32:
        raise TypeError(f"exact_sum takes float32 values, got {flat.dtype}")
    fused = _fused.usable(flat)
    if top is None:
        top = _fused.abs_max(flat) if fused else float(flat.abs().max())
    if not math.isfinite(top):
        raise ValueError(f"exact_sum of non-finite values (max |x| = {top})")
    if top == 0.0:
        return 0.0
    shift = 31 - math.frexp(top)[1]  # max |x| · 2^shift < 2^31
    scale, total = math.ldexp(1.0, shift), 0
    if fused:
        return math.ldexp(float(_fused.fixed_point_sum(flat, scale, absolute)), -shift)
    for sl in chunks(flat.numel(), flat.device):
        v = (flat[sl].abs() if absolute else flat[sl]) * scale  # × 2^shift: exact (no overflow, and no underflow that matters: truncated below)
        total += int(v.trunc_().to(torch.int32).sum(dtype=torch.int64))
    return math.ldexp(float(total), -shift)


def mean_abs(x: Tensor, work: Workspace | None = None) -> float:
    """``mean |x|`` of a float32 tensor, independent of ISA, threads and order (``work``: scratch for |x|)."""
    flat = x.detach().reshape(-1)
    if flat.dtype == torch.float32 and _fused.usable(flat):
        return exact_sum(flat, absolute=True) / max(flat.numel(), 1)
    if work is None:
        absx = x.detach().abs()
    else:
        absx = work.get("portable.abs", x.shape, x)
        torch.abs(x.detach(), out=absx)
    return exact_sum(absx, float(absx.max()) if absx.numel() else 0.0) / max(x.numel(), 1)


def std(x: Tensor) -> float:
    """Sample standard deviation (``n - 1``) of float32 ``x``, independent of ISA, threads and order."""
    n = x.numel()
    if n < 2:
        return float("nan")
    mean = exact_sum(x) / n
    dev = x.detach().reshape(-1) - torch.tensor(mean, dtype=x.dtype, device=x.device)
    return math.sqrt(exact_sum(dev * dev) / (n - 1))


# -- scalars --------------------------------------------------------------------------------------------


def py_log(v: float) -> float:
    """``ln v`` for a positive finite float in pure Python arithmetic (IEEE double; |error| < 1e-15·|ln v|)."""
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"py_log needs a positive finite number, got {v!r}")
    m, e = math.frexp(v)  # v = m · 2^e, m in [0.5, 1)
    if m < 0.7071067811865476:
        m, e = m * 2.0, e - 1
    s = (m - 1.0) / (m + 1.0)  # ln m = 2 atanh s, |s| < 0.172
    s2, term, total = s * s, s, 0.0
    for k in range(1, 40, 2):
        total += term / k
        term *= s2
    return 2.0 * total + e * 0.6931471805599453


# -- allocating forms, for readable formulas ------------------------------------------------------------


def log(x: Tensor) -> Tensor:
    """Portable ``ln x`` (a new tensor)."""
    return log_(x.detach().to(torch.float32).clone(memory_format=torch.contiguous_format), Workspace())


def exp(x: Tensor) -> Tensor:
    """Portable ``e^x`` (a new tensor)."""
    return exp_(x.detach().to(torch.float32).clone(memory_format=torch.contiguous_format), Workspace())


def pow(x: Tensor, p: float) -> Tensor:  # noqa: A001 - the math name
    """Portable ``x^p`` for positive ``x`` (a new tensor)."""
    return pow_(x.detach().to(torch.float32).clone(memory_format=torch.contiguous_format), p, Workspace())


def normal(like: Tensor, generator: Generator) -> Tensor:
    """Standard normal draws shaped like ``like`` (float32, on its device) — :func:`normal_`."""
    return normal_(torch.empty(like.shape, dtype=torch.float32, device=like.device), generator, Workspace())
