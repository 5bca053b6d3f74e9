"""PCM of the IBM HERMES project chip, Le Gallo et al. Nat. Electron. 2023 — aihwkit's ``HermesNoiseModel``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from device_models import portable
from device_models._workspace import Workspace
from device_models.base import DeviceModelError
from device_models.conductance import PowerLawDriftModel
from device_models.registry import register

#: Characterised ``(g_max µS, t0 s, prog_coeff)`` per number of devices per weight polarity.
_DEFAULTS: dict[int, tuple[float, float, tuple[float, ...]]] = {
    1: (10.35, 200.0, (0.15781817, 2.32443916, -2.16310839, 0.68841818)),
    2: (20.7, 300.0, (0.16603222, 4.71806468, -8.48101252, 4.68961419)),
}


def _branch(x: Tensor, split: float, low: Tensor, high: Tensor) -> Tensor:
    return torch.where(x < split, low, high)


@register
@dataclass
class Hermes(PowerLawDriftModel):
    r"""PCM on the IBM HERMES project chip: Le Gallo et al., "A 64-core mixed-signal in-memory compute chip
    based on phase-change memory for deep neural network inference", Nat. Electron. 6, 680 (2023)
    (https://www.nature.com/articles/s41928-023-01010-1) and Khaddam-Aljameh et al., JSSC 2022; modelling
    method of Nandakumar et al. ICECS 2019. Coefficients and formulas as IBM aihwkit 1.1.0
    ``HermesNoiseModel``.

    ``num_devices = 2`` (default) programs each polarity with two devices using the multi-device
    programming of Vasilopoulos et al., TED 2023 (g_max 20.7 µS, t0 300 s, tighter programming);
    ``num_devices = 1`` is single-device programming (g_max 10.35 µS, t0 200 s). ``g_max``/``t0``/
    ``prog_coeff`` left at ``None`` take those characterised values; ``g_max`` may not exceed them.
    Drift-exponent mean/std and read-noise Q_s are aihwkit's piecewise log/polynomial fits in g/g_max.
    """

    name = "hermes"
    reference = "Le Gallo et al., Nat. Electron. 2023; aihwkit HermesNoiseModel"

    num_devices: int = 2
    g_max: float | None = None  # type: ignore[assignment]
    t0: float | None = None  # type: ignore[assignment]
    prog_coeff: tuple[float, ...] | None = None  # type: ignore[assignment]
    prog_coeff_g_max_reference: float | None = None  # type: ignore[assignment]
    t_read: float = 512.0e-9

    def __post_init__(self) -> None:
        if self.num_devices not in _DEFAULTS:
            raise DeviceModelError(f"hermes: num_devices must be 1 or 2, got {self.num_devices!r}")
        g_max, t0, coeff = _DEFAULTS[self.num_devices]
        if self.g_max is None:
            self.g_max = g_max
        elif self.g_max > g_max:
            raise DeviceModelError(
                f"hermes: g_max = {self.g_max} µS exceeds the {g_max} µS characterised for "
                f"num_devices = {self.num_devices}; use g_max <= {g_max}"
            )
        if self.t0 is None:
            self.t0 = t0
        if self.prog_coeff is None:
            self.prog_coeff = coeff
            self.prog_coeff_g_max_reference = self.prog_coeff_g_max_reference or g_max
        elif self.prog_coeff_g_max_reference is None:
            self.prog_coeff_g_max_reference = self.g_max
        super().__post_init__()

    # HERMES' laws are written out of place (piecewise, with ``where``); the in-place forms copy them
    def drift_stats_into(self, g_rel: Tensor, mu: Tensor, sig: Tensor, work: Workspace) -> None:
        m, s = self.drift_stats(g_rel)
        mu.copy_(m)
        sig.copy_(s)

    def read_noise_q_into(self, g_rel: Tensor, work: Workspace) -> None:
        g_rel.copy_(self.read_noise_q(g_rel))

    def drift_stats(self, g_rel: Tensor) -> tuple[Tensor, Tensor]:
        log_g = portable.log(g_rel)
        g2 = g_rel * g_rel
        mu = _branch(
            g_rel,
            0.0945,
            (-0.0387 * log_g - 0.0182).clamp(0.0720, 0.13),
            -0.0436 * g2 - 0.0126 * g_rel + 0.0736,
        )
        if self.num_devices == 1:
            sig = _branch(
                g_rel,
                0.3039,
                (-0.0120 * log_g - 0.0023).clamp(0.0124, 0.04),
                -0.0165 * g2 + 0.0116 * g_rel + 0.0104,
            )
        else:
            sig = _branch(
                g_rel,
                0.3055,
                (-0.0117 * log_g - 0.0057).clamp(0.0091, 0.04),
                -0.0118 * g2 + 0.0093 * g_rel + 0.0073,
            )
        return mu, sig

    def read_noise_q(self, g_rel: Tensor) -> Tensor:
        log_g = portable.log(g_rel.clamp(min=1e-30))
        g2 = g_rel * g_rel
        g3 = g2 * g_rel
        if self.num_devices == 1:
            return _branch(
                g_rel,
                0.1591,
                (-0.0078 * log_g + 0.0038).clamp(0.0179, 0.04),
                0.0664 * g3 - 0.1352 * g2 + 0.0768 * g_rel + 0.0088,
            )
        return _branch(
            g_rel,
            0.16,
            (-0.0117 * log_g - 0.0069).clamp(0.015, 0.04),
            0.0069 * g3 - 0.0280 * g2 + 0.0211 * g_rel + 0.0123,
        )
