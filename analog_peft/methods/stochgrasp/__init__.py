"""StochGRASP: GRASP with Gaussian group parameters and a noise-aware KL objective."""

from analog_peft.methods.stochgrasp.config import StochGraspConfig
from analog_peft.methods.stochgrasp.layer import StochGraspLayer
from analog_peft.methods.stochgrasp.model import StochGraspModel

__all__ = ["StochGraspConfig", "StochGraspLayer", "StochGraspModel"]
