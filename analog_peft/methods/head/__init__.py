"""Head-only: the baseline every adapter is compared with (the task head trains, nothing else)."""

from analog_peft.methods.head.config import HeadConfig
from analog_peft.methods.head.model import HeadModel

__all__ = ["HeadConfig", "HeadModel"]
