"""The StochGRASP layer: Gaussian group scale/shift, reparameterised sampling, target spreads."""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analog_peft.methods.errors import AdapterError
from analog_peft.methods.grasp.layer import GraspLayer, guard
from analog_peft.methods.layer import layer_generator
from analog_peft.methods.modules import read_weight
from analog_peft.methods.stochgrasp import sigma_target as st
from analog_peft.methods.stochgrasp.config import StochGraspConfig
from analog_peft.methods.targets import Target
from analog_peft.objectives import spread_kl

_MAX_CALIBRATION_ROWS = 2048


def inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def sample_gamma(mean: Tensor, sigma: Tensor, eps: Tensor, form: str, gamma_eps: float) -> Tensor:
    """One draw of the scale ``γ`` around ``mean`` with relative spread ``sigma`` (``gamma_form``)."""
    if form == "gaussian":
        return mean + sigma * eps
    if form == "lognormal":
        return mean * torch.exp(sigma * eps)
    return mean / guard(1 + sigma * eps, gamma_eps)  # "gaussian_inverse": 1/γ = (1 + σε)/μ


class StochGraspLayer(GraspLayer):
    """GRASP with ``γ = μ_γ + softplus(ρ_γ)·ε``, ``β = μ_β + softplus(ρ_β)·ε`` (``γ``/``β`` hold the means).

    Sampling follows ``self.sampling`` (None: sample in ``train()``, means in ``eval()``); a fixed chip
    sample (:meth:`set_chip_sample`) takes precedence over both.
    """

    def __init__(self, target: Target, config: StochGraspConfig) -> None:
        super().__init__(target, config)
        rho = inverse_softplus(config.sigma_init)
        self.rho_gamma = nn.Parameter(torch.full((self.k,), rho, **self.factory()))
        self.rho_beta = nn.Parameter(torch.full((self.k,), rho, **self.factory()))
        const = config.sigma_target if isinstance(config.sigma_target, float) else math.nan
        self.register_buffer("sigma_rel", torch.full((self.k,), const, **self.factory()))
        self.register_buffer("input_rms", torch.full((self.k,), math.nan, **self.factory()))
        self.register_buffer("group_count", torch.bincount(self.group_index, minlength=self.k).to(self._dtype))
        self.cfg = config
        self.device_model = None  # set by StochGraspModel when sigma_target comes from a device model
        self.sampling: bool | None = None
        self.calibrating = False
        self._chip_sample: tuple[Tensor, Tensor] | None = None

    # -- spreads ------------------------------------------------------------------------------
    @property
    def sigma_gamma(self) -> Tensor:
        return F.softplus(self.rho_gamma)

    @property
    def sigma_beta(self) -> Tensor:
        return F.softplus(self.rho_beta)

    def is_sampling(self) -> bool:
        return self.training if self.sampling is None else self.sampling

    def modulation(self) -> tuple[Tensor, Tensor]:
        if self._chip_sample is not None:
            return self._chip_sample
        if not self.is_sampling():
            return self.gamma, self.beta
        return self._draw(torch.randn(2, self.k, device=self.gamma.device, dtype=self.gamma.dtype))

    def _draw(self, eps: Tensor) -> tuple[Tensor, Tensor]:
        """``(γ, β)`` for the standard normals ``eps`` (``[2, K]``)."""
        gamma = sample_gamma(self.gamma, self.sigma_gamma, eps[0], self.cfg.gamma_form, self.gamma_eps)
        return gamma, self.beta + self.sigma_beta * eps[1]

    def foldable_now(self) -> bool:
        return self._chip_sample is not None or not self.is_sampling()  # a fixed (γ, β): foldable

    def fold_sources(self) -> list[Tensor]:
        return [*super().fold_sources(), *(self._chip_sample or ())]

    def deployed_modulation(self) -> tuple[Tensor, Tensor]:
        return self._chip_sample if self._chip_sample is not None else (self.gamma, self.beta)

    @torch.no_grad()
    def set_chip_sample(self, seed: int | None) -> None:
        """Fix ``(γ, β)`` to one sample drawn from (``seed``, layer name); None goes back to the means."""
        if seed is None:
            self._chip_sample = None
            return
        gen = layer_generator(seed, "chip:" + self.target_name)
        self._chip_sample = self._draw(torch.randn(2, self.k, generator=gen).to(self.gamma))

    # -- targets ------------------------------------------------------------------------------
    def adapted_forward(self, x: Tensor) -> Tensor:
        if self.training or self.calibrating:
            self._observe(x.detach())
        return super().adapted_forward(x)

    @torch.no_grad()
    def _observe(self, x: Tensor) -> None:
        rows = x.reshape(-1, self.in_features).to(self._dtype)
        rms = (st.group_sums(rows.pow(2).mean(0), self.group_index, self.k) / self.group_count).sqrt()
        if torch.isnan(self.input_rms).any():
            self.input_rms.copy_(rms)
        else:
            m = self.cfg.input_rms_momentum
            self.input_rms.mul_(m).add_((1 - m) * rms)
        if torch.isnan(self.sigma_rel).any() and self.device_model is not None:
            self.sigma_rel.copy_(self._derive(rows[:_MAX_CALIBRATION_ROWS]))

    def _derive(self, x: Tensor) -> Tensor:
        """Relative target spread per group from the device model (see :class:`StochGraspConfig`)."""
        spec = self.cfg.sigma_target
        weight = read_weight(self.base_layer)[0].double()
        seed = (self.cfg.seed * 7919 + zlib.crc32(self.target_name.encode())) % (2**63 - 1)
        from device_models import make_generator

        errors = st.device_reads(
            weight, self.device_model, spec["t"], make_generator(seed), self.cfg.n_draws,
            self.cfg.drift_compensation,
        )
        gi = self.group_index.cpu()
        if spec["mode"] == "weight_spread":
            rel = st.weight_spread(weight, [e.cpu() for e in errors], gi, self.k)
        elif spec["mode"] == "group_scale":
            rel = st.group_scale(weight, [e.cpu() for e in errors], gi, self.k)
        else:
            rel = st.output_error(weight.cpu(), [e.cpu() for e in errors], x.double().cpu(), gi, self.k)
        return rel.to(**self.factory())

    def sigma_targets(self) -> tuple[Tensor, Tensor]:
        """``(σ_target,γ, σ_target,β)``, each ``[K]``."""
        if torch.isnan(self.sigma_rel).any():
            raise AdapterError(
                f"stochgrasp: sigma_target of {self.target_name!r} is not derived yet; run a training forward "
                "pass (or adapted.calibrate(batch)) before regularization_loss()"
            )
        if self.cfg.beta_scale == "absolute":
            return self.sigma_rel, self.sigma_rel
        if torch.isnan(self.input_rms).any():
            raise AdapterError(
                f"stochgrasp: the input RMS of {self.target_name!r} is unknown; run a training forward pass "
                "(or adapted.calibrate(batch)) before regularization_loss(), or use beta_scale='absolute'"
            )
        return self.sigma_rel, self.sigma_rel * self.input_rms.clamp_min(1e-8)

    def kl(self) -> Tensor:
        """``Σ_k KL`` of the γ and β spreads toward their targets."""
        t_gamma, t_beta = self.sigma_targets()
        return spread_kl(self.sigma_gamma, t_gamma).sum() + spread_kl(self.sigma_beta, t_beta).sum()
