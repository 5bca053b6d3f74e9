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
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Generator, Tensor

from device_models import portable
from device_models.base import DeviceModel, DeviceModelError, ProgrammedState, Workspace, chunks, randn

#: Lower clip of relative conductances before taking logs (as aihwkit's ``_ZERO_CLIP``).
ZERO_CLIP = 1e-7


def polyval(coeffs: tuple[float, ...], x: Tensor) -> Tensor:
    """``sum_i coeffs[i] * x**i`` (ascending order, Horner's scheme)."""
    out = torch.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * x + c
    return out


def clipped_log_linear(g_rel: Tensor, law: tuple[float, float, float, float]) -> Tensor:
    """``clamp(slope · ln(g_rel) + intercept, lo, hi)`` for ``law = (slope, intercept, lo, hi)``."""
    slope, intercept, lo, hi = law
    return (slope * portable.log(g_rel.clamp(min=ZERO_CLIP)) + intercept).clamp(min=lo, max=hi)


def _check_finite(owner: str, **values: float) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise DeviceModelError(f"{owner}: {key} must be a finite number >= 0, got {value!r}")


@dataclass
class ConductanceModel(DeviceModel):
    """Base of models whose physics acts on device conductances (µS).

    Subclasses implement :meth:`program_conductances` (return a dict with at least ``"g_prog"``, the
    programmed conductances, plus any per-device draws such as drift exponents) and
    :meth:`read_conductances` (conductances at ``t`` from those tensors).
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

    def to_conductances(self, weights: Tensor) -> tuple[Tensor, float, float]:
        """Target conductances ``[n_devices, *weights.shape]``, ``scale`` (µS per weight unit) and offset."""
        weights = weights.detach()
        if self.differential:
            scale = self.g_max / weights.abs().max().clamp(min=ZERO_CLIP).item()
            scaled = weights * scale
            g = torch.stack([scaled.clamp(0.0, self.g_max), (-scaled).clamp(0.0, self.g_max)])
            return g, scale, 0.0
        w_min, w_max = weights.min().item(), weights.max().item()
        scale = (self.g_max - self.g_min) / max(w_max - w_min, ZERO_CLIP)
        return ((weights - w_min) * scale + self.g_min).unsqueeze(0), scale, w_min

    def to_weights(self, g: Tensor, state: ProgrammedState) -> Tensor:
        """Map stacked conductances back to weights with the programming-time scale."""
        if self.differential:
            return (g[0] - g[1]) / state.scale
        return (g[0] - self.g_min) / state.scale + state.offset

    def to_weights_into(self, g: Tensor, state: ProgrammedState, out: Tensor) -> None:
        """:meth:`to_weights` written into ``out`` (same operations, same bits)."""
        if not out.is_contiguous():
            out.copy_(self.to_weights(g, state))
            return
        n = out.numel()
        flat, o = g.reshape(-1), out.view(-1)
        for s in chunks(n, out.device):
            if self.differential:
                torch.sub(flat[s], flat[n + s.start : n + s.stop], out=o[s])
                o[s].div_(state.scale)
            else:
                torch.sub(flat[s], self.g_min, out=o[s])
                o[s].div_(state.scale)
                o[s].add_(state.offset)

    def to_conductances_into(self, weights: Tensor, work: Workspace) -> tuple[Tensor, float, float]:
        """:meth:`to_conductances` (differential mapping) in ``work``'s buffer ``"g_target"`` (same bits)."""
        assert self.differential
        n = weights.numel()
        w = weights.reshape(-1)
        scaled = work.get("w", (n,), weights)
        parts = chunks(n, weights.device)
        for s in parts:
            torch.abs(w[s], out=scaled[s])
        scale = self.g_max / scaled.max().clamp(min=ZERO_CLIP).item()
        g = work.get("g_target", (2 * n,), weights)
        for s in parts:
            sc, hi = scaled[s], g[n + s.start : n + s.stop]
            torch.mul(w[s], scale, out=sc)
            torch.clamp(sc, 0.0, self.g_max, out=g[s])
            torch.neg(sc, out=hi)
            hi.clamp_(0.0, self.g_max)
        return g.view(2, *weights.shape), scale, 0.0

    # -- DeviceModel -------------------------------------------------------------------------------
    @torch.no_grad()
    def program(self, weights: Tensor, generator: Generator) -> ProgrammedState:
        g_target, scale, offset = self.to_conductances(weights)
        tensors = self.program_conductances(g_target, generator)
        return ProgrammedState(target=weights, tensors=tensors, scale=scale, offset=offset)

    @torch.no_grad()
    def read(self, state: ProgrammedState, t: float, generator: Generator) -> Tensor:
        self.check_time(t)
        return self.to_weights(self.read_conductances(state.tensors, float(t), generator), state)

    def programmed_weights(self, state: ProgrammedState) -> Tensor:
        """Weights right after programming (programming noise only, no drift or read noise)."""
        return self.to_weights(state.tensors["g_prog"], state)

    def programmed_into(self, state: ProgrammedState, out: Tensor, work: Workspace) -> None:
        self.to_weights_into(state.tensors["g_prog"], state, out)

    # -- physics -----------------------------------------------------------------------------------
    @abstractmethod
    def program_conductances(self, g_target: Tensor, generator: Generator) -> dict[str, Tensor]:
        """Draw programmed conductances (key ``"g_prog"``) and any drift parameters per device."""

    @abstractmethod
    def read_conductances(self, tensors: dict[str, Tensor], t: float, generator: Generator) -> Tensor:
        """Conductances at ``t`` seconds after programming."""


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

    def prog_sigma(self, g_target: Tensor) -> Tensor:
        """Programming-noise standard deviation (µS) at target conductance ``g_target``."""
        return polyval(self.prog_coeff, g_target / self.g_max) * (self.g_max / self.prog_coeff_g_max_reference)

    @abstractmethod
    def drift_stats(self, g_rel: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and std of the drift exponent ν at relative target conductance ``g_T / g_max``."""

    @abstractmethod
    def read_noise_q(self, g_rel: Tensor) -> Tensor:
        """1/f read-noise amplitude ``Q_s`` at relative programmed conductance ``|g_prog| / g_max``."""

    def program_conductances(self, g_target: Tensor, generator: Generator) -> dict[str, Tensor]:
        noise = randn(g_target, generator)
        g_prog = (g_target + self.prog_noise_scale * self.prog_sigma(g_target) * noise).clamp(min=0.0)
        mu, sig = self.drift_stats((g_target / self.g_max).abs().clamp(min=ZERO_CLIP))
        nu = (mu + sig * randn(g_target, generator)).abs() * self.drift_scale
        return {"g_prog": g_prog, "nu": nu}

    def read_conductances(self, tensors: dict[str, Tensor], t: float, generator: Generator) -> Tensor:
        g_prog, nu = tensors["g_prog"], tensors["nu"]
        t_total = t + self.t0
        g_drift = g_prog * portable.exp(-nu * portable.py_log(t_total / self.t0)) if t > 0 else g_prog
        q_s = self.read_noise_q(g_prog.abs() / self.g_max)
        sig_noise = q_s * self.accumulated_read_noise(t)
        noise = randn(g_prog, generator)
        return (g_drift + g_drift.abs() * self.read_noise_scale * sig_noise * noise).clamp(min=0.0)

    # -- allocation-free variants: the same operations in the same order as program/read above, on
    # reusable buffers, chunk by chunk; results are bit-identical (tests/test_chip_fingerprints.py) -----
    def drift_stats_full_(self, g_rel: Tensor, mu: Tensor, sig: Tensor, work: Workspace) -> None:
        """Whole-tensor part of :meth:`drift_stats` into ``mu``/``sig`` (may overwrite ``g_rel``)."""
        m, s = self.drift_stats(g_rel)
        mu.copy_(m)
        sig.copy_(s)

    def drift_stats_chunk_(self, g_rel: Tensor, mu: Tensor, sig: Tensor) -> None:
        """Chunkable rest of :meth:`drift_stats` after :meth:`drift_stats_full_` (here: nothing)."""

    def read_noise_q_full_(self, g_rel: Tensor, work: Workspace) -> None:
        """Whole-tensor part of :meth:`read_noise_q`, in place."""
        g_rel.copy_(self.read_noise_q(g_rel))

    def read_noise_q_chunk_(self, q: Tensor) -> None:
        """Chunkable rest of :meth:`read_noise_q` after :meth:`read_noise_q_full_` (here: nothing)."""

    def _prog_sigma_chunk(self, g_target: Tensor, out: Tensor, x: Tensor) -> None:
        """:meth:`prog_sigma` written into ``out`` (``x`` is scratch); IEEE-exact ops only."""
        coeffs = self.prog_coeff
        torch.div(g_target, self.g_max, out=x)
        if len(coeffs) == 1:
            out.fill_(coeffs[0])
        else:  # polyval's Horner scheme; full_like(x, c) * x == x * c
            torch.mul(x, coeffs[-1], out=out)
            out.add_(coeffs[-2])
            for c in reversed(coeffs[:-2]):
                out.mul_(x)
                out.add_(c)
        out.mul_(self.g_max / self.prog_coeff_g_max_reference)

    @torch.no_grad()
    def program_into(
        self,
        weights: Tensor,
        generator: Generator,
        work: Workspace,
        reuse: ProgrammedState | None = None,
    ) -> ProgrammedState:
        if not self.differential:
            return self.program(weights, generator)
        weights = weights.detach()
        g_target, scale, offset = self.to_conductances_into(weights, work)
        shape, n = g_target.shape, g_target.numel()
        old = reuse.tensors if reuse is not None else {}
        g_prog, nu = (_reusable(old.get(k), g_target) for k in ("g_prog", "nu"))
        gt, gp, nf = g_target.view(-1), g_prog.view(-1), nu.view(-1)
        a, b = work.get("a", (n,), g_target), work.get("b", (n,), g_target)
        parts = chunks(n, g_target.device)
        portable.normal_(a, generator, work)
        for s in parts:  # g_prog = (g_T + pns·σ_prog(g_T)·ξ).clamp(0); g_rel = (g_T / g_max).abs().clamp(ZERO_CLIP)
            bs = b[s]
            self._prog_sigma_chunk(gt[s], bs, x=gp[s])
            bs.mul_(self.prog_noise_scale)
            bs.mul_(a[s])
            torch.add(gt[s], bs, out=gp[s])
            gp[s].clamp_(min=0.0)
            torch.div(gt[s], self.g_max, out=bs)
            bs.abs_()
            bs.clamp_(min=ZERO_CLIP)
        self.drift_stats_full_(b.view(shape), nu, a.view(shape), work)
        for s in parts:
            self.drift_stats_chunk_(b[s], nf[s], a[s])
        portable.normal_(b, generator, work)
        for s in parts:  # ν = (μ + σ·ξ).abs() · drift_scale
            a[s].mul_(b[s])
            torch.add(nf[s], a[s], out=nf[s])
            nf[s].abs_()
            nf[s].mul_(self.drift_scale)
        q = _reusable(old.get("q"), g_target)  # Q_s depends on g_prog only: once per chip, not per time
        self._read_noise_q_into(gp, q, work)
        tensors = {"g_prog": g_prog, "nu": nu, "q": q}
        return ProgrammedState(target=weights, tensors=tensors, scale=scale, offset=offset)

    def _read_noise_q_into(self, gp: Tensor, q: Tensor, work: Workspace) -> None:
        """``q ← read_noise_q(|g_prog| / g_max)`` (flat ``gp``), the fused form of :meth:`read_noise_q`."""
        parts, qf = chunks(gp.numel(), gp.device), q.view(-1)
        for s in parts:
            torch.abs(gp[s], out=qf[s])
            qf[s].div_(self.g_max)
        self.read_noise_q_full_(q, work)
        for s in parts:
            self.read_noise_q_chunk_(qf[s])

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
        t = float(t)
        g_prog, nu = state.tensors["g_prog"], state.tensors["nu"]
        shape, n = g_prog.shape, g_prog.numel()
        gp, nf = g_prog.reshape(-1), nu.reshape(-1)
        a, b, c = (work.get(k, (n,), g_prog) for k in ("a", "b", "c"))
        parts = chunks(n, g_prog.device)
        t_total = t + self.t0
        drift = t > 0
        if drift:  # ((t + t0)/t0)^(-ν) = exp(-ν · ln((t + t0)/t0))
            log_ratio = portable.py_log(t_total / self.t0)
            for s in parts:
                torch.neg(nf[s], out=a[s])
                a[s].mul_(log_ratio)
            portable.exp_(a, work)
        q = state.tensors.get("q")  # Q_s(|g_prog| / g_max), kept from programming or computed here
        if q is None:
            q = b
            self._read_noise_q_into(gp, q, work)
        qf = q.reshape(-1)
        g_drift = a if drift else gp
        accumulated = self.accumulated_read_noise(t)
        for s in parts:  # g_drift = g_prog·(...); σ = Q_s·sqrt(...); |g_drift|·read_noise_scale·σ
            if drift:
                torch.mul(gp[s], a[s], out=a[s])
            torch.mul(qf[s], accumulated, out=b[s])
            torch.abs(g_drift[s], out=c[s])
            c[s].mul_(self.read_noise_scale)
            c[s].mul_(b[s])
        portable.normal_(b, generator, work)
        for s in parts:  # (g_drift + ...·ξ).clamp(0)
            c[s].mul_(b[s])
            torch.add(g_drift[s], c[s], out=c[s])
            c[s].clamp_(min=0.0)
        self.to_weights_into(c.view(shape), state, out)


def _reusable(old: Tensor | None, like: Tensor) -> Tensor:
    """``old`` if it can hold a tensor shaped like ``like`` (a previous chip's draws), else a new tensor."""
    if old is not None and old.shape == like.shape and old.dtype == like.dtype and old.device == like.device:
        return old
    return torch.empty_like(like)
