"""Conductance-based device models: weights ↔ device conductances, and the shared PCM-style physics.

:class:`ConductanceModel` maps one tile's weights to conductances in µS, lets a subclass draw programming
noise and drift parameters per device (``program_conductances``) and evolve them to time ``t``
(``read_conductances``), and maps back. Two mappings, as aihwkit's converters:

* differential single pair (``SinglePairConductanceConverter``): ``scale = g_max / max|W|``,
  ``g+ = clamp(w·scale, 0, g_max)``, ``g- = clamp(-w·scale, 0, g_max)``, ``w = (g+ - g-) / scale``;
* single device (``SingleDeviceConductanceConverter``): ``g = (w - min W)·scale + g_min`` with
  ``scale = (g_max - g_min) / (max W - min W)``.

The devices of a tile are held as one stacked tensor (``[2, *W.shape]`` for a pair, ``[1, *W.shape]`` for
a single device), so every law is applied vectorised to all of them at once.

Difference to aihwkit: aihwkit's ``apply_drift_noise`` converts the *noisy programmed weights* back to
conductances, re-deriving ``scale`` from their max|w| (a few % above the target's max|w|), and applies drift
and read noise to those. Here the programmed conductances and the programming-time ``scale`` are kept in
the state, which is what a chip physically holds. For PCM/HERMES the difference is tiny: drift is
multiplicative, so the re-scaling cancels except in the conductance-dependent 1/f amplitude ``Q_s`` (shifted
by ~2 %, well within statistical tolerance). For ReRAM (Wan 2022) aihwkit re-draws around the *original*
targets but maps back with the re-derived scale, inflating read weights by ``max|w_prog| / max|w|``
(≈ 3.5 % on a 256×256 Gaussian matrix); that artefact is not reproduced.

Each formula is written once, as in-place operations on flat buffers, chunk by chunk
(:mod:`device_models._workspace`): the chip programmer calls them with its reusable workspace, the plain
``program``/``read``/``prog_sigma``/``drift_stats``/``read_noise_q`` with a fresh one. Every operation
is an IEEE-exact torch op or a :mod:`device_models.portable` kernel, so a chip's bits do not depend on
the CPU, the thread count or the chunking (``tests/test_chip_fingerprints.py``).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Generator, Tensor

from device_models import _fused, portable
from device_models._workspace import Workspace, chunks, reusable
from device_models.base import DeviceModel, DeviceModelError, ProgrammedState

#: Lower clip of relative conductances before taking logs (as aihwkit's ``_ZERO_CLIP``).
ZERO_CLIP = 1e-7
_ZERO_CLIP_F32 = float(torch.tensor(ZERO_CLIP, dtype=torch.float32))  # as a float32 clamp bound reads back


def polyval(coeffs: tuple[float, ...], x: Tensor, out: Tensor | None = None) -> Tensor:
    """``sum_i coeffs[i] * x**i`` (ascending order, Horner's scheme), into ``out`` if given."""
    out = torch.empty_like(x) if out is None else out
    if len(coeffs) == 1:
        return out.fill_(coeffs[0])
    torch.mul(x, coeffs[-1], out=out)
    out.add_(coeffs[-2])
    for c in reversed(coeffs[:-2]):
        out.mul_(x)
        out.add_(c)
    return out


def clipped_line_(x: Tensor, law: tuple[float, float, float, float], out: Tensor) -> None:
    """``out ← clamp(slope · x + intercept, lo, hi)`` for ``law = (slope, intercept, lo, hi)``."""
    slope, intercept, lo, hi = law
    torch.mul(x, slope, out=out)
    out.add_(intercept)
    out.clamp_(min=lo, max=hi)


def _check_finite(owner: str, **values: float) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DeviceModelError(f"{owner}: {key} must be a finite number >= 0, got {value!r}")


@dataclass
class ConductanceModel(DeviceModel):
    """Base of models whose physics acts on device conductances (µS).

    Subclasses implement :meth:`program_conductances` (return a dict with at least ``"g_prog"``, the
    programmed conductances, plus any per-device draws such as drift exponents) and
    :meth:`read_conductances` (conductances at ``t`` from those tensors). Both get the caller's
    :class:`Workspace` (buffers they may use as scratch) and the target may live in it: copy what you keep.
    """

    g_max: float = 25.0

    #: ``True``: differential single pair (g+, g-); ``False``: one device per weight between g_min and g_max.
    differential: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_finite(self.name, g_max=self.g_max)
        if self.g_max <= 0:
            raise DeviceModelError(f"{self.name}: g_max must be > 0 µS, got {self.g_max}")

    # -- mapping -----------------------------------------------------------------------------------
    @property
    def g_min(self) -> float:  # overridden by a dataclass field in single-device models
        return 0.0

    def to_conductances(self, weights: Tensor, work: Workspace | None = None) -> tuple[Tensor, float, float]:
        """Target conductances ``[n_devices, *weights.shape]`` (in ``work``'s buffer ``"g_target"``),
        ``scale`` (µS per weight unit) and offset."""
        work = Workspace() if work is None else work
        weights = weights.detach()
        n = weights.numel()
        w = weights.reshape(-1)
        parts = chunks(n, weights.device)
        if not self.differential:  # g = (w - min W)·scale + g_min
            w_min, w_max = weights.min().item(), weights.max().item()
            scale = (self.g_max - self.g_min) / max(w_max - w_min, ZERO_CLIP)
            g = work.get("g_target", (n,), weights)
            for s in parts:
                torch.sub(w[s], w_min, out=g[s])
                g[s].mul_(scale)
                g[s].add_(self.g_min)
            return g.view(1, *weights.shape), scale, w_min
        g = work.get("g_target", (2 * n,), weights)
        if n and _fused.usable(w) and _fused.usable(g):  # the same bits in one compiled pass (max|W| keeps NaN)
            scale = self.g_max / max(_fused.abs_max(w), _ZERO_CLIP_F32)
            _fused.pair_targets_(w, scale, self.g_max, g)
            return g.view(2, *weights.shape), scale, 0.0
        scaled = work.get("w", (n,), weights)  # g± = clamp(±w·scale, 0, g_max), scale = g_max / max|W|
        for s in parts:
            torch.abs(w[s], out=scaled[s])
        scale = self.g_max / scaled.max().clamp(min=ZERO_CLIP).item()
        for s in parts:
            sc, hi = scaled[s], g[n + s.start : n + s.stop]
            torch.mul(w[s], scale, out=sc)
            torch.clamp(sc, 0.0, self.g_max, out=g[s])
            torch.neg(sc, out=hi)
            hi.clamp_(0.0, self.g_max)
        return g.view(2, *weights.shape), scale, 0.0

    def to_weights(self, g: Tensor, state: ProgrammedState, out: Tensor | None = None) -> Tensor:
        """Map stacked conductances back to weights with the programming-time scale (into ``out``)."""
        if out is None:
            out = torch.empty(g.shape[1:], dtype=g.dtype, device=g.device)
        if not out.is_contiguous():
            return out.copy_(self.to_weights(g, state))
        n = out.numel()
        flat, o = g.reshape(-1), out.view(-1)
        if self.differential and _fused.usable(flat) and _fused.usable(o):  # the same bits in one compiled pass
            _fused.pair_weights_(flat, state.scale, o)
            return out
        for s in chunks(n, out.device):
            if self.differential:  # w = (g+ - g-) / scale
                torch.sub(flat[s], flat[n + s.start : n + s.stop], out=o[s])
                o[s].div_(state.scale)
            else:  # w = (g - g_min) / scale + offset
                torch.sub(flat[s], self.g_min, out=o[s])
                o[s].div_(state.scale)
                o[s].add_(state.offset)
        return out

    # -- DeviceModel -------------------------------------------------------------------------------
    @torch.no_grad()
    def program_into(
        self,
        weights: Tensor,
        generator: Generator,
        work: Workspace,
        reuse: ProgrammedState | None = None,
    ) -> ProgrammedState:
        weights = weights.detach()
        g_target, scale, offset = self.to_conductances(weights, work)
        tensors = self.program_conductances(g_target, generator, work, reuse.tensors if reuse is not None else None)
        return ProgrammedState(target=weights, tensors=tensors, scale=scale, offset=offset)

    def program(self, weights: Tensor, generator: Generator) -> ProgrammedState:
        """Program ``weights``; the physics runs in float32 (the portable kernels' type), and :meth:`read`
        returns the dtype of ``weights``."""
        state = self.program_into(weights.detach().to(torch.float32), generator, Workspace())
        state.target = weights.detach()
        return state

    @torch.no_grad()
    def read_into(
        self,
        state: ProgrammedState,
        t: float,
        generator: Generator,
        out: Tensor,
        work: Workspace,
    ) -> None:
        self.check_time(t)
        self.to_weights(self.read_conductances(state.tensors, float(t), generator, work), state, out)

    def read(self, state: ProgrammedState, t: float, generator: Generator) -> Tensor:
        out = torch.empty(state.target.shape, dtype=torch.float32, device=state.target.device)
        self.read_into(state, t, generator, out, Workspace())
        return out.to(state.target.dtype)

    def programmed_weights(self, state: ProgrammedState) -> Tensor:
        """Weights right after programming (programming noise only, no drift or read noise)."""
        return self.to_weights(state.tensors["g_prog"], state).to(state.target.dtype)

    def programmed_into(self, state: ProgrammedState, out: Tensor, work: Workspace) -> None:
        self.to_weights(state.tensors["g_prog"], state, out)

    # -- physics -----------------------------------------------------------------------------------
    @abstractmethod
    def program_conductances(
        self,
        g_target: Tensor,
        generator: Generator,
        work: Workspace | None = None,
        reuse: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Draw programmed conductances (key ``"g_prog"``) and any drift parameters per device; ``reuse``
        holds a previous chip's tensors of the same tile, which may be overwritten."""

    @abstractmethod
    def read_conductances(
        self, tensors: dict[str, Tensor], t: float, generator: Generator, work: Workspace | None = None
    ) -> Tensor:
        """Conductances at ``t`` seconds after programming (may be a buffer of ``work``)."""


@dataclass
class PowerLawDriftModel(ConductanceModel):
    r"""PCM-style physics shared by the ``pcm``, ``hermes`` and ``fitted_pcm`` models (as aihwkit's).

    * Programming: ``g_prog = max(0, g_T + prog_noise_scale · σ_prog(g_T) · ξ)`` with
      :math:`\sigma_{prog} = \sum_i c_i (g_T/g_{max})^i \cdot g_{max}/g_{ref}` (µS, ``prog_coeff`` fitted
      at ``g_ref = prog_coeff_g_max_reference``).
    * Drift exponent per device, drawn once: ``ν = drift_scale · |μ_ν(g_T) + σ_ν(g_T) · ξ|``.
    * Read at ``t`` (s after programming): ``g_d = g_prog · ((t + t0)/t0)^(-ν)`` (no drift at ``t = 0``),
      plus accumulated 1/f read noise ``g_d + |g_d| · read_noise_scale · Q_s(g_prog) ·
      sqrt(ln((t + t0 + t_read) / (2 t_read))) · ξ``, clamped at 0. As in aihwkit, the read noise is
      accumulated from the end of programming, so it is present (and fresh per read) even at ``t = 0``.
    """

    prog_coeff: tuple[float, ...] = (0.26348, 1.9650, -1.1731)
    prog_coeff_g_max_reference: float = 25.0
    t0: float = 20.0
    t_read: float = 250.0e-9
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.prog_coeff = tuple(float(c) for c in self.prog_coeff)
        if not self.prog_coeff:
            raise DeviceModelError(f"{self.name}: prog_coeff needs at least one coefficient")
        _check_finite(
            self.name,
            prog_coeff_g_max_reference=self.prog_coeff_g_max_reference,
            t_read=self.t_read,
            prog_noise_scale=self.prog_noise_scale,
            read_noise_scale=self.read_noise_scale,
            drift_scale=self.drift_scale,
        )
        if self.t0 <= 0 or self.t_read <= 0 or self.prog_coeff_g_max_reference <= 0:
            raise DeviceModelError(f"{self.name}: t0, t_read and prog_coeff_g_max_reference must be > 0")

    def accumulated_read_noise(self, t: float) -> float:
        """``sqrt(ln((t + t0 + t_read) / (2 t_read)))``: the 1/f noise accumulated since programming."""
        return math.sqrt(portable.py_log((t + self.t0 + self.t_read) / (2 * self.t_read)))

    # -- the laws: one in-place form each; the plain forms run it on a copy -------------------------
    def prog_sigma(self, g_target: Tensor, out: Tensor | None = None, scratch: Tensor | None = None) -> Tensor:
        """Programming-noise standard deviation (µS) at target conductance ``g_target`` (into ``out``)."""
        out = torch.empty_like(g_target) if out is None else out
        x = torch.empty_like(g_target) if scratch is None else scratch
        torch.div(g_target, self.g_max, out=x)
        polyval(self.prog_coeff, x, out=out)
        return out.mul_(self.g_max / self.prog_coeff_g_max_reference)

    @abstractmethod
    def drift_stats_into(self, g_rel: Tensor, mu: Tensor, sig: Tensor, work: Workspace) -> None:
        """``mu``, ``sig`` ← mean and std of the drift exponent ν at relative target conductance
        ``g_T / g_max`` (flat contiguous tensors; ``g_rel`` may be overwritten)."""

    @abstractmethod
    def read_noise_q_into(self, g_rel: Tensor, work: Workspace) -> None:
        """``g_rel`` ← 1/f read-noise amplitude ``Q_s`` at relative programmed conductance
        ``|g_prog| / g_max``, in place (a flat contiguous tensor)."""

    def drift_stats(self, g_rel: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of the drift exponent ν at relative target conductance ``g_T / g_max``."""
        x = g_rel.flatten().clone()
        mu, sig = torch.empty_like(x), torch.empty_like(x)
        self.drift_stats_into(x, mu, sig, Workspace())
        return mu.view(g_rel.shape), sig.view(g_rel.shape)

    def read_noise_q(self, g_rel: Tensor) -> Tensor:
        """1/f read-noise amplitude ``Q_s`` at relative programmed conductance ``|g_prog| / g_max``."""
        q = g_rel.flatten().clone()
        self.read_noise_q_into(q, Workspace())
        return q.view(g_rel.shape)

    # -- programming and reading -------------------------------------------------------------------
    def program_conductances(
        self,
        g_target: Tensor,
        generator: Generator,
        work: Workspace | None = None,
        reuse: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        work = Workspace() if work is None else work
        old = reuse or {}
        n = g_target.numel()
        g_prog, nu, q = (reusable(old.get(k), g_target) for k in ("g_prog", "nu", "q"))
        gt, gp, nf = g_target.reshape(-1), g_prog.view(-1), nu.view(-1)
        a, b = work.get("a", (n,), g_target), work.get("b", (n,), g_target)
        parts = chunks(n, g_target.device)
        fused = all(_fused.usable(x) for x in (gt, gp, nf, a, b))  # the same bits in one compiled pass per law
        portable.normal_(a, generator, work)
        if fused:
            _fused.program_targets_(gt, a, gp, b, self.prog_coeff, self.g_max,
                                    self.g_max / self.prog_coeff_g_max_reference, self.prog_noise_scale, ZERO_CLIP)
        else:
            for s in parts:  # g_prog = (g_T + pns·σ_prog(g_T)·ξ).clamp(0); g_rel = |g_T / g_max|.clamp(ZERO_CLIP)
                bs = b[s]
                self.prog_sigma(gt[s], out=bs, scratch=gp[s])
                if self.prog_noise_scale != 1.0:  # × 1 is exact: skipped
                    bs.mul_(self.prog_noise_scale)
                bs.mul_(a[s])
                torch.add(gt[s], bs, out=gp[s])
                gp[s].clamp_(min=0.0)
                torch.div(gt[s], self.g_max, out=bs)
                bs.abs_()
                bs.clamp_(min=ZERO_CLIP)
        self.drift_stats_into(b, nf, a, work)
        portable.normal_(b, generator, work)
        if fused:
            _fused.abs_nu_(nf, a, b, self.drift_scale)
        else:
            for s in parts:  # ν = (μ + σ·ξ).abs() · drift_scale
                a[s].mul_(b[s])
                torch.add(nf[s], a[s], out=nf[s])
                nf[s].abs_()
                if self.drift_scale != 1.0:
                    nf[s].mul_(self.drift_scale)
        self._read_noise_q(gp, q.view(-1), work)  # Q_s depends on g_prog only: once per chip, not per time
        return {"g_prog": g_prog, "nu": nu, "q": q}

    def _read_noise_q(self, gp: Tensor, q: Tensor, work: Workspace) -> None:
        """``q ← read_noise_q(|g_prog| / g_max)`` (flat ``gp`` and ``q``)."""
        for s in chunks(gp.numel(), gp.device):
            torch.abs(gp[s], out=q[s])
            q[s].div_(self.g_max)
        self.read_noise_q_into(q, work)

    def read_conductances(
        self, tensors: dict[str, Tensor], t: float, generator: Generator, work: Workspace | None = None
    ) -> Tensor:
        work = Workspace() if work is None else work
        g_prog, nu = tensors["g_prog"], tensors["nu"]
        n = g_prog.numel()
        gp, nf = g_prog.reshape(-1), nu.reshape(-1)
        a, b, c = (work.get(k, (n,), g_prog) for k in ("a", "b", "c"))
        parts = chunks(n, g_prog.device)
        drift = t > 0
        q = tensors.get("q")  # Q_s(|g_prog| / g_max), kept from programming or computed here
        if all(_fused.usable(x) for x in (gp, nf, b, c)) and (q is None or _fused.usable(q)):
            if q is None:
                q = work.get("q", (n,), g_prog)
                self._read_noise_q(gp, q, work)
            portable.normal_(b, generator, work)  # the read's only draw, as below: the same bits in one pass
            _fused.drift_read_(gp, nf, q.reshape(-1), b, c, portable.py_log((t + self.t0) / self.t0) if drift else None,
                               self.accumulated_read_noise(t), self.read_noise_scale)
            return c.view(g_prog.shape)
        if drift:  # g_drift = g_prog · ((t + t0)/t0)^(-ν) = g_prog · exp(-ν · ln((t + t0)/t0))
            log_ratio = portable.py_log((t + self.t0) / self.t0)
            for s in parts:  # (-ν) · L, bit for bit
                torch.mul(nf[s], -log_ratio, out=a[s])
            portable.exp_(a, work)
        if q is None:
            q = b
            self._read_noise_q(gp, q, work)
        qf = q.reshape(-1)
        g_drift = a if drift else gp
        accumulated = self.accumulated_read_noise(t)
        for s in parts:  # σ = Q_s·sqrt(...); |g_drift|·read_noise_scale·σ
            if drift:
                torch.mul(gp[s], a[s], out=a[s])
            torch.mul(qf[s], accumulated, out=b[s])
            torch.abs(g_drift[s], out=c[s])
            if self.read_noise_scale != 1.0:
                c[s].mul_(self.read_noise_scale)
            c[s].mul_(b[s])
        portable.normal_(b, generator, work)
        for s in parts:  # (g_drift + |g_drift|·read_noise_scale·σ·ξ).clamp(0)
            c[s].mul_(b[s])
            torch.add(g_drift[s], c[s], out=c[s])
            c[s].clamp_(min=0.0)
        return c.view(g_prog.shape)
