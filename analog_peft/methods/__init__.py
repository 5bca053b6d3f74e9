"""Adapter methods with one API (in the manner of Hugging Face PEFT's tuners).

>>> adapted = attach(model, GraspConfig(k=16))        # in place; returns an AdaptedModel
>>> adapted.trainable_summary(); adapted.save_adapter("out/grasp")
>>> adapted2 = load_adapter(fresh_model, "out/grasp"); merged = merge_adapter(adapted2)

Methods (``METHODS``): grasp, stochgrasp, lora, bitfit, ia3, para, full, and head (the head-only baseline).
"""

from analog_peft.methods.api import attach, load_adapter, merge_adapter
from analog_peft.methods.bitfit import BitFitConfig, BitFitModel
from analog_peft.methods.config import AdapterConfig, config_from_dict, registered_configs
from analog_peft.methods.errors import AdapterError, AdapterFileError
from analog_peft.methods.full import FullConfig, FullModel
from analog_peft.methods.grasp import GraspConfig, GraspModel
from analog_peft.methods.head import HeadConfig, HeadModel
from analog_peft.methods.ia3 import IA3Config, IA3Model
from analog_peft.methods.lora import LoraConfig, LoraModel
from analog_peft.methods.model import AdaptedModel
from analog_peft.methods.para import ParaConfig, ParaModel
from analog_peft.methods.stochgrasp import StochGraspConfig, StochGraspModel

METHODS = registered_configs()

__all__ = [
    "METHODS",
    "AdaptedModel",
    "AdapterConfig",
    "AdapterError",
    "AdapterFileError",
    "BitFitConfig",
    "BitFitModel",
    "FullConfig",
    "FullModel",
    "GraspConfig",
    "GraspModel",
    "HeadConfig",
    "HeadModel",
    "IA3Config",
    "IA3Model",
    "LoraConfig",
    "LoraModel",
    "ParaConfig",
    "ParaModel",
    "StochGraspConfig",
    "StochGraspModel",
    "attach",
    "config_from_dict",
    "load_adapter",
    "merge_adapter",
]
