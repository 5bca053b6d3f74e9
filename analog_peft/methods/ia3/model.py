"""(IA)^3 adapted model (mergeable)."""

from __future__ import annotations

from analog_peft.methods.ia3.config import IA3Config
from analog_peft.methods.ia3.layer import IA3Layer
from analog_peft.methods.model import AdaptedModel
from analog_peft.methods.scaling import scaling_plan
from analog_peft.methods.targets import Target


class IA3Model(AdaptedModel):
    config_class = IA3Config
    layer_class = IA3Layer
    mergeable = True

    def create_layer(self, target: Target) -> IA3Layer:
        cfg = self.adapter_config
        roles = tuple(cfg.target_roles or cfg.default_roles)
        mode, slices = scaling_plan(target, roles, list(cfg.feedforward_modules or []))
        return IA3Layer(target, cfg, mode, slices)
