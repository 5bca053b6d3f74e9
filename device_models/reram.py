"""ReRAM: Wan et al. Nature 2022 and IBM's CMO/HfOx devices — aihwkit's ReRAM noise models."""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Generator, Tensor

from device_models import portable
from device_models._workspace import Workspace
from device_models.base import DeviceModelError, randn
from device_models.conductance import ConductanceModel, _check_finite, polyval
from device_models.registry import register
from device_models.units import DAY

_INV_LN10 = 0.4342944819032518  # log10(x) = ln(x) / ln(10)

#: Wan et al. 2022 deviation-std polynomials (µS at g_max = 40 µS, ascending powers of g/g_max) per time.
WAN2022_COEFFS: dict[float, tuple[float, ...]] = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    DAY: (0.701, 22.086, -50.773, 47.095, -16.458),
    2 * DAY: (0.782, 20.274, -43.507, 37.062, -11.934),
}


@register
@dataclass
class ReRAMWan2022(ConductanceModel):
    r"""ReRAM of the NeuRRAM chip: Wan et al., "A compute-in-memory chip based on resistive random-access
    memory", Nature 608, 504 (2022) (https://www.nature.com/articles/s41586-022-04992-8); polynomials
    and formulas as IBM aihwkit 1.1.0 ``ReRamWan2022NoiseModel``.

    Differential single pair, max|W| at ``g_max`` (40 µS). The conductance deviation from target was read
    off the paper's figures at 1 s, 1 day and 2 days and fitted with 4th-order polynomials σ_t(g/g_max)
    (µS at 40 µS, rescaled by ``g_max / 40``), so only those times exist (:attr:`fitted_times`):
    programming draws ``g_T + noise_scale · σ_1s · ξ``; reading at ``t`` draws a fresh
    ``g_T + noise_scale · σ_t · ξ`` around the *target* (as aihwkit: the paper gives the distribution at
    ``t``, not its correlation with the programmed state), clamped at 0. No separate 1/f read noise.

    Note: aihwkit intends the ``g_max/40`` rescaling but applies ``g_max / g_max`` (its
    ``prog_coeff_g_max_reference`` is never read); the two agree at the calibrated ``g_max = 40``.
    """

    name = "reram"
    reference = "Wan et al., Nature 608, 504 (2022); aihwkit ReRamWan2022NoiseModel"
    fitted_times = tuple(WAN2022_COEFFS)

    g_max: float = 40.0
    noise_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_finite(self.name, noise_scale=self.noise_scale)

    def _draw(self, g_target: Tensor, t: float, generator: Generator) -> Tensor:
        sigma = polyval(WAN2022_COEFFS[t], g_target / self.g_max) * (self.g_max / 40.0)
        return (g_target + self.noise_scale * sigma * randn(g_target, generator)).clamp(min=0.0)

    def program_conductances(
        self,
        g_target: Tensor,
        generator: Generator,
        work: Workspace | None = None,
        reuse: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        return {"g_prog": self._draw(g_target, 1.0, generator), "g_target": g_target.clone()}

    def read_conductances(
        self, tensors: dict[str, Tensor], t: float, generator: Generator, work: Workspace | None = None
    ) -> Tensor:
        key = next(ft for ft in WAN2022_COEFFS if math.isclose(t, ft, rel_tol=1e-9, abs_tol=1e-9))
        return self._draw(tensors["g_target"], key, generator)


#: CMO/HfOx programming-noise std (µS) = c0 + c1 · g (µS) per program-and-verify acceptance range (%).
CMO_PROG_COEFFS: dict[float, tuple[float, float]] = {
    0.2: (0.00081107, 0.00106879),
    2.0: (0.0112185391, 0.01129027418),
}


@register
@dataclass
class ReRAMCMO(ConductanceModel):
    r"""Analog filamentary conductive-metal-oxide (CMO)/HfOx ReRAM of IBM Research Europe - Zurich, from
    the statistical characterisation of Falcone et al. (in review, as cited by aihwkit) with the read-noise
    (1/f) characterisation of Lombardo et al., DRC 2024; coefficients and formulas as IBM aihwkit 1.1.0
    ``ReRamCMONoiseModel``.

    One device per weight (aihwkit's ``SingleDeviceConductanceConverter``): min W → ``g_min`` (9 µS),
    max W → ``g_max`` (88.2 µS).

    * Programming: ``g_T + prog_noise_scale · (c0 + c1 g_T) · ξ`` for a program-and-verify acceptance
      range of 0.2 % or 2 % (aihwkit's default ``acceptance_range=2e-2`` is not one of its keys and falls
      back to 0.2, the default here). No clamping.
    * Relaxation (independent of g): mean shift ``-0.08900206 · ln t`` and std
      ``0.04201137 · ln t + 0.41183342`` µS (both × ``drift_scale``), then read noise
      ``K · log10(g) · sqrt(ln((t + t_read) / (2 t_read)))`` with K = 0.0277316483, t_read = 1 µs;
      clamped to ``[g_min, g_max]``. At ``t = 0`` the programmed conductances are returned.
    """

    name = "reram_cmo"
    reference = "Falcone et al. (in review); Lombardo et al., DRC 2024; aihwkit ReRamCMONoiseModel"
    differential = False

    g_max: float = 88.199997
    g_min: float = 9.0  # type: ignore[assignment]
    acceptance_range: float = 0.2
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift_scale: float = 1.0
    decay_mean: float = -0.08900206
    decay_std: tuple[float, float] = (0.04201137, 0.41183342)
    read_k: float = 0.0277316483
    t_read: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_finite(
            self.name,
            g_min=self.g_min,
            prog_noise_scale=self.prog_noise_scale,
            read_noise_scale=self.read_noise_scale,
            drift_scale=self.drift_scale,
        )
        if self.g_min >= self.g_max:
            raise DeviceModelError(f"reram_cmo: g_min ({self.g_min}) must be below g_max ({self.g_max})")
        if float(self.acceptance_range) not in CMO_PROG_COEFFS:
            raise DeviceModelError(
                f"reram_cmo: acceptance_range must be one of {sorted(CMO_PROG_COEFFS)} (%), "
                f"got {self.acceptance_range!r}"
            )
        self.acceptance_range = float(self.acceptance_range)
        self.decay_std = tuple(float(v) for v in self.decay_std)  # type: ignore[assignment]
        if self.t_read <= 0:
            raise DeviceModelError(f"reram_cmo: t_read must be > 0 s, got {self.t_read}")

    def program_conductances(
        self,
        g_target: Tensor,
        generator: Generator,
        work: Workspace | None = None,
        reuse: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        sigma = polyval(CMO_PROG_COEFFS[self.acceptance_range], g_target)
        return {"g_prog": g_target + self.prog_noise_scale * sigma * randn(g_target, generator)}

    def read_conductances(
        self, tensors: dict[str, Tensor], t: float, generator: Generator, work: Workspace | None = None
    ) -> Tensor:
        g_prog = tensors["g_prog"]
        if t == 0:
            return g_prog
        log_t = portable.py_log(t)
        sigma_relax = self.decay_std[0] * log_t + self.decay_std[1]
        g_drift = g_prog + self.drift_scale * (self.decay_mean * log_t + sigma_relax * randn(g_prog, generator))
        accumulated = math.sqrt(portable.py_log((t + self.t_read) / (2 * self.t_read)))
        sigma_read = self.read_k * (portable.log(g_drift.clamp(min=1e-30)) * _INV_LN10) * accumulated
        g_final = g_drift + self.read_noise_scale * sigma_read * randn(g_prog, generator)
        return g_final.clamp(min=self.g_min, max=self.g_max)
