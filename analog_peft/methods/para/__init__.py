"""PARA: prompt-aware rescaling vectors of Q, V and the FFN activation, generated per input."""

from analog_peft.methods.para.config import ParaConfig
from analog_peft.methods.para.layer import ParaLayer
from analog_peft.methods.para.model import ParaModel

__all__ = ["ParaConfig", "ParaLayer", "ParaModel"]
