"""BitFit: only the biases (and the head) train."""

from analog_peft.methods.bitfit.config import BitFitConfig
from analog_peft.methods.bitfit.model import BitFitModel

__all__ = ["BitFitConfig", "BitFitModel"]
