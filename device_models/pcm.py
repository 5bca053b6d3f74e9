"""Phase-change memory (PCM), Nandakumar et al. ICECS 2019 — aihwkit's ``PCMLikeNoiseModel``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from device_models import _fused, portable
from device_models._workspace import Workspace, chunks
from device_models.base import DeviceModelError
from device_models.conductance import ZERO_CLIP, PowerLawDriftModel, clipped_line_
from device_models.registry import register


@register
@dataclass
class PCM(PowerLawDriftModel):
    r"""PCM devices characterised by Nandakumar et al., "Phase-change memory models for deep learning
    training and inference", ICECS 2019 (https://ieeexplore.ieee.org/document/8964852); coefficients and
    formulas as in IBM aihwkit 1.1.0 ``PCMLikeNoiseModel`` (Rasch et al., "Using the IBM analog in-memory
    hardware acceleration kit for neural network training and inference", APL Mach. Learn. 2023).

    Differential single pair with max|W| at ``g_max`` (25 µS).

    * Programming noise: σ_prog(g) = (0.26348 + 1.9650 x - 1.1731 x²) µS, ``x = g_T/g_max`` (fitted at
      25 µS, rescaled by ``g_max / 25``).
    * Drift exponent: μ_ν = clamp(-0.0155 ln x + 0.0244, 0.049, 0.1),
      σ_ν = clamp(-0.0125 ln x - 0.0059, 0.008, 0.045); ``nu_mean``/``nu_std`` hold these laws as
      ``(slope, intercept, min, max)``.
    * Read noise: Q_s = min(0.2, 0.0088 / max(1e-3, (g/g_max)^0.65)), accumulated over
      ``ln((t + t0 + t_read) / (2 t_read))`` with t0 = 20 s, t_read = 250 ns.

    Args:
        g_max: conductance (µS) the tile's max|W| maps to.
        prog_coeff: programming-noise polynomial (µS, ascending powers of g/g_max).
        prog_coeff_g_max_reference: g_max (µS) at which ``prog_coeff`` was fitted.
        t0: first read after programming (s); drift is relative to it.
        t_read: read duration of the 1/f-noise fit (s).
        prog_noise_scale, read_noise_scale, drift_scale: multipliers of the three effects.
        nu_mean, nu_std: drift-exponent laws ``(slope, intercept, min, max)`` in ln(g/g_max).
    """

    name = "pcm"
    reference = "Nandakumar et al., ICECS 2019; aihwkit PCMLikeNoiseModel"

    nu_mean: tuple[float, float, float, float] = (-0.0155, 0.0244, 0.049, 0.1)
    nu_std: tuple[float, float, float, float] = (-0.0125, -0.0059, 0.008, 0.045)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.nu_mean = tuple(float(v) for v in self.nu_mean)  # type: ignore[assignment]
        self.nu_std = tuple(float(v) for v in self.nu_std)  # type: ignore[assignment]
        if len(self.nu_mean) != 4 or len(self.nu_std) != 4:
            raise DeviceModelError(f"{self.name}: nu_mean and nu_std are (slope, intercept, min, max)")

    #: Q_s = min(cap, c / max(floor, x^p)) as ``(p, floor, c, cap)``
    q_law: ClassVar[tuple[float, float, float, float]] = (0.65, 1e-3, 0.0088, 0.2)

    def drift_stats_into(self, g_rel: Tensor, mu: Tensor, sig: Tensor, work: Workspace) -> None:
        if all(_fused.usable(x) for x in (g_rel, mu, sig)):  # the same bits in one compiled pass
            _fused.clipped_lines_of_log_(g_rel, ZERO_CLIP, self.nu_mean, mu, self.nu_std, sig)
            return
        g_rel.clamp_(min=ZERO_CLIP)
        portable.log_(g_rel, work)  # μ and σ share the log
        for s in chunks(g_rel.numel(), g_rel.device):
            clipped_line_(g_rel[s], self.nu_mean, mu[s])
            clipped_line_(g_rel[s], self.nu_std, sig[s])

    def _read_noise_q(self, gp: Tensor, q: Tensor, work: Workspace) -> None:
        if _fused.usable(gp) and _fused.usable(q):  # |g_prog| / g_max and the law in one compiled pass
            _fused.capped_inverse_power_(gp, q, self.g_max, *self.q_law)
        else:
            super()._read_noise_q(gp, q, work)

    def read_noise_q_into(self, g_rel: Tensor, work: Workspace) -> None:
        p, floor, c, cap = self.q_law
        portable.pow_(g_rel, p, work)
        for s in chunks(g_rel.numel(), g_rel.device):  # min(cap, c / max(floor, x)); c / x == c · (1/x)
            q = g_rel[s]
            q.clamp_(min=floor)
            q.reciprocal_()
            q.mul_(c)
            q.clamp_(max=cap)
