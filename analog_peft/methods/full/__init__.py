"""Full fine-tuning: every weight trains (the digital reference)."""

from analog_peft.methods.full.config import FullConfig
from analog_peft.methods.full.model import FullModel

__all__ = ["FullConfig", "FullModel"]
