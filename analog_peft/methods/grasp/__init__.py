"""GRASP: grouped, shared input scale/shift in front of each adapted linear layer."""

from analog_peft.methods.grasp.config import GraspConfig
from analog_peft.methods.grasp.layer import GraspLayer
from analog_peft.methods.grasp.model import GraspModel

__all__ = ["GraspConfig", "GraspLayer", "GraspModel"]
