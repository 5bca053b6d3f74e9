"""StochGRASP configuration (docs/methods.md §2)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from analog_peft import field_names
from analog_peft.methods.errors import AdapterError
from analog_peft.methods.grasp.config import GraspConfig

SIGMA_TARGET_MODES = ("weight_spread", "group_scale", "output_error")
BETA_SCALES = ("input_rms", "absolute")
GAMMA_FORMS = ("gaussian", "gaussian_inverse", "lognormal")


@dataclass
class StochGraspConfig(GraspConfig):
    """StochGRASP: ``γ_k ~ N(μ_γk, σ_γk²)``, ``β_k ~ N(μ_βk, σ_βk²)``, ``σ = softplus(ρ)``: 4K per layer.

    Training samples ``γ = μ + σ·ε`` with **[choice]** one fresh ``ε`` per group per forward (shared by
    the batch); evaluation uses the means (or one fixed sample per chip, ``sample_for_chip(seed)``). The
    objective adds ``λ·Σ_layers Σ_k KL(N(0, σ_k²) ‖ N(0, σ_target,k²))`` (:func:`analog_peft.objectives.
    spread_kl`, **[choice]** of form) for γ and β.

    Args:
        gamma_form: **[choice]** how the scale is sampled around its mean ``μ`` (``σ = softplus(ρ_γ)``):

            * ``"gaussian"`` (the spec): ``γ = μ + σ·ε``, used as a divisor — at σ ≈ 0.3 some groups
              draw ``|γ| ≪ 1`` and their inputs are amplified by ``1/|γ|`` (floored by ``gamma_eps``);
            * ``"gaussian_inverse"``: the multiplier is Gaussian, ``1/γ = (1 + σ·ε)/μ`` — the input gain is
              bounded by ``(1 + |σε|)/|μ|``, a draw near zero mutes the group instead of amplifying it;
            * ``"lognormal"``: ``γ = μ·exp(σ·ε)`` — the sign is kept, ``σ`` is the spread of ``log γ``.

            In every form ``σ`` is a relative spread of the scale (``γ ≈ μ(1 ± σ)`` for small σ), so the
            KL term and ``sigma_target`` mean the same thing; β is always ``μ_β + σ_β·ε``; deployment at
            the means uses ``γ = μ`` in every form.
        lam: λ, weight of the KL term (0: no pull; the spreads then shrink under the task loss alone).
        sigma_init: Initial σ of every γ and β (ρ = softplus⁻¹(sigma_init)); means start at γ=1, β=0.
        sigma_lr_scale: Learning-rate multiplier of ρ in :meth:`StochGraspModel.param_groups` (the spec's
            measurement found σ barely moves at the means' learning rate).
        sigma_target: The target spread, relative (in units of γ):

            * a float ``c`` — a constant: ``σ_target,γ = c`` for every group;
            * ``{"device_model": <device_models name or to_dict()>, "t": seconds, "mode": ...}`` — derived from a
              device model read at time ``t`` on the layer's own weights ``W`` (a noise-free read of
              the layer; one tile per layer), per group ``k`` of input columns ``G_k``:

              - ``"weight_spread"``: ``σ_γk = ‖ΔW[:, G_k]‖ / ‖W[:, G_k]‖`` with ``ΔW = α·W_t − W`` — the
                relative weight error, which is what a scale ``1/γ`` on those columns feels (``W(1+δ) =
                W/γ`` ⇒ ``γ ≈ 1 − δ``);
              - ``"group_scale"``: the spread over ``n_draws`` (>= 2) programmed copies of ``δ_k = ⟨ΔW[:, G_k],
                W[:, G_k]⟩ / ‖W[:, G_k]‖²``, the shared relative scale error of the group (the component of ΔW a
                single ``γ_k`` can express; its mean is a bias the learned mean absorbs). Independent per-weight
                errors average out of it, so it is far smaller than ``"weight_spread"`` (with PCM at 1 day on
                MiniLM-L6, ``"weight_spread"`` gives σ_t ≈ 0.33 and SST-2 training stays at chance);
              - ``"output_error"``: ``σ_γk = ‖X_k ΔW[:, G_k]ᵀ‖ / ‖X_k W[:, G_k]ᵀ‖`` on the layer's inputs
                ``X`` of the first training (or :meth:`~StochGraspModel.calibrate`) batch — the relative
                output-error the device causes through group ``k``;

              ``W_t`` is scaled by the chips' global drift compensation ``α = mean|W_prog| / mean|W_t|``
              (``drift_compensation``; :func:`analog_peft.chips.drift_compensation`).
            The β targets are absolute (input units): ``σ_target,β = σ_target,γ · rms(x_{G_k})``, since a
            relative error δ on column j acts like an input shift ``δ·x_j`` (``beta_scale="input_rms"``,
            the RMS is a running mean over training batches); ``beta_scale="absolute"`` uses ``σ_target,γ``
            for β as well.
        beta_scale: See ``sigma_target``.
        input_rms_momentum: Momentum of the running input RMS per group.
        n_draws: Device-model draws averaged when deriving ``σ_target``.
        drift_compensation: Apply the global drift compensation ``α`` above.
    """

    method: ClassVar[str] = "stochgrasp"

    gamma_form: str = "gaussian"
    lam: float = 1e-3
    sigma_init: float = 0.01
    sigma_lr_scale: float = 10.0
    sigma_target: Any = 0.01
    beta_scale: str = "input_rms"
    input_rms_momentum: float = 0.99
    n_draws: int = 1
    drift_compensation: bool = True

    def validate(self) -> None:
        super().validate()
        for name in ("lam", "sigma_lr_scale"):
            if not getattr(self, name) >= 0:
                raise AdapterError(f"stochgrasp: {name} must be >= 0, got {getattr(self, name)!r}")
        if not (isinstance(self.sigma_init, int | float) and self.sigma_init > 0):
            raise AdapterError(f"stochgrasp: sigma_init must be > 0, got {self.sigma_init!r}")
        if self.gamma_form not in GAMMA_FORMS:
            raise AdapterError(f"stochgrasp: gamma_form must be one of {GAMMA_FORMS}, got {self.gamma_form!r}")
        if self.beta_scale not in BETA_SCALES:
            raise AdapterError(f"stochgrasp: beta_scale must be one of {BETA_SCALES}, got {self.beta_scale!r}")
        if not 0 <= self.input_rms_momentum < 1:
            raise AdapterError("stochgrasp: input_rms_momentum must be in [0, 1)")
        if not isinstance(self.n_draws, int) or self.n_draws < 1:
            raise AdapterError(f"stochgrasp: n_draws must be a positive integer, got {self.n_draws!r}")
        if isinstance(self.sigma_target, dict) and self.sigma_target.get("mode") == "group_scale" and self.n_draws < 2:
            raise AdapterError("stochgrasp: sigma_target mode 'group_scale' is a spread across chips: set n_draws >= 2")
        self.sigma_target = normalise_sigma_target(self.sigma_target)


def normalise_sigma_target(spec: Any) -> float | dict[str, Any]:
    """Check a ``sigma_target`` value and fill defaults (``mode="weight_spread"``)."""
    hint = (
        'sigma_target must be a positive float or {"device_model": "pcm", "t": 86400, "mode": "weight_spread" | '
        '"group_scale" | "output_error"}'
    )
    if isinstance(spec, bool):
        raise AdapterError(f"stochgrasp: {hint}; got {spec!r}")
    if isinstance(spec, int | float):
        if not (math.isfinite(spec) and spec > 0):
            raise AdapterError(f"stochgrasp: {hint}; got {spec!r}")
        return float(spec)
    if not isinstance(spec, dict):
        raise AdapterError(f"stochgrasp: {hint}; got {type(spec).__name__}")
    try:
        spec = field_names.current_names(spec, field_names.SIGMA_TARGET, "stochgrasp: sigma_target")
    except ValueError as exc:
        raise AdapterError(str(exc)) from None
    unknown = sorted(set(spec) - {"device_model", "t", "mode"})
    if unknown or "device_model" not in spec or "t" not in spec:
        raise AdapterError(f"stochgrasp: {hint}; got keys {sorted(spec)}")
    mode = spec.get("mode", "weight_spread")
    if mode not in SIGMA_TARGET_MODES:
        raise AdapterError(f"stochgrasp: sigma_target mode must be one of {SIGMA_TARGET_MODES}, got {mode!r}")
    device = spec["device_model"]
    if not isinstance(device, str | dict):
        to_dict = getattr(device, "to_dict", None)
        if not callable(to_dict):
            raise AdapterError("stochgrasp: sigma_target device_model must be a device_models name, dict or model")
        device = to_dict()
    return {"device_model": device, "t": float(spec["t"]), "mode": mode}
