"""(IA)^3: learned vectors rescaling K, V and the FFN intermediate activation."""

from analog_peft.methods.ia3.config import IA3Config
from analog_peft.methods.ia3.layer import IA3Layer
from analog_peft.methods.ia3.model import IA3Model

__all__ = ["IA3Config", "IA3Layer", "IA3Model"]
