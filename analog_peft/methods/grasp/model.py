"""GRASP adapted model: validates K against the targets; mergeable."""

from __future__ import annotations

from analog_peft.methods.grasp.config import GraspConfig
from analog_peft.methods.grasp.layer import GraspLayer, check_groups
from analog_peft.methods.model import AdaptedModel
from analog_peft.methods.targets import Target


class GraspModel(AdaptedModel):
    config_class = GraspConfig
    layer_class = GraspLayer
    mergeable = True

    def check_targets(self, targets: list[Target]) -> None:
        check_groups(self.adapter_config.k, targets, self.method)
