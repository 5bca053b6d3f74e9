"""StochGRASP adapted model: KL regulariser, ρ learning rate, sampling modes, per-chip samples."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from analog_peft.methods.errors import AdapterError
from analog_peft.methods.grasp.model import GraspModel
from analog_peft.methods.stochgrasp.config import StochGraspConfig
from analog_peft.methods.stochgrasp.layer import StochGraspLayer
from analog_peft.methods.targets import Target


class StochGraspModel(GraspModel):
    config_class = StochGraspConfig
    layer_class = StochGraspLayer
    #: buffers that hold NaN until derived (σ_target from the device model, the input RMS)
    nan_sentinels = ("sigma_rel", "input_rms")
    mergeable = True  # merges the means (or the chip sample, if one is set)

    def _build(self, targets: list[Target]) -> None:
        spec = self.adapter_config.sigma_target
        self._device_model = None
        if isinstance(spec, dict):
            import device_models

            try:
                self._device_model = device_models.get(spec["device_model"])
            except ValueError as exc:
                raise AdapterError(f"stochgrasp: sigma_target device_model: {exc}") from exc
            self._device_model.check_time(spec["t"])

    def create_layer(self, target: Target) -> StochGraspLayer:
        layer = super().create_layer(target)
        layer.device_model = self._device_model
        return layer

    def _layers(self) -> list[StochGraspLayer]:
        return list(self.adapter_layers().values())

    def regularization_loss(self) -> Tensor:
        """``λ·Σ_layers Σ_k KL(N(0,σ²) ‖ N(0,σ_target²))`` for γ and β."""
        lam = self.adapter_config.lam
        if lam == 0:
            return super().regularization_loss()
        return lam * torch.stack([layer.kl() for layer in self._layers()]).sum()

    def spreads(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Layer name → current ``(σ_γ, σ_β)`` (detached)."""
        return {n: (l.sigma_gamma.detach(), l.sigma_beta.detach()) for n, l in self.adapter_layers().items()}

    def sigma_targets(self) -> dict[str, tuple[Tensor, Tensor]]:
        """Layer name → ``(σ_target,γ, σ_target,β)``."""
        return {n: l.sigma_targets() for n, l in self.adapter_layers().items()}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Two groups: everything trainable at ``lr``, the ρ's at ``lr · sigma_lr_scale``."""
        rho = [p for l in self._layers() for p in (l.rho_gamma, l.rho_beta)]
        ids = {id(p) for p in rho}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        return [{"params": rest, "lr": lr}, {"params": rho, "lr": lr * self.adapter_config.sigma_lr_scale}]

    def set_sampling(self, sampling: bool | None) -> None:
        for layer in self._layers():
            layer.sampling = sampling

    def sample_for_chip(self, seed: int | None) -> StochGraspModel:
        """Use one fixed sample of every ``(γ, β)``, deterministic per ``seed`` (None: back to the means)."""
        for layer in self._layers():
            layer.set_chip_sample(seed)
        return self

    @torch.no_grad()
    def calibrate(self, *args: Any, **kwargs: Any) -> None:
        """One no-grad forward that records input RMS and derives ``σ_target`` (instead of a training step)."""
        layers = self._layers()
        for layer in layers:
            layer.calibrating = True
        try:
            self.model(*args, **kwargs)
        finally:
            for layer in layers:
                layer.calibrating = False
