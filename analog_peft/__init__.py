"""analog_peft: noise-aware PEFT of transformers for analog in-memory-computing chips.

The front door: the lifecycle's verbs and their typed configs, imported on first use (``import analog_peft``
stays cheap)::

    import analog_peft as ap

    model = ap.load_classifier("minilm-l6", num_labels=2)          # head pooling from the checkpoint
    report = ap.convert(model, "mapped")                            # convert: analog tiles
    adapted = ap.attach(model, ap.GraspConfig(k=16))                # attach an adapter
    result = ap.train(ap.TrainConfig(method="grasp", out_dir="runs/grasp"))   # train (+ noise in the loop)
    chips = ap.ChipProgrammer(model, "pcm", seed=0)                 # program / drift chips
    table = ap.run_montecarlo(ap.MonteCarloConfig(...), "runs/mc")  # evaluate on many chips × times
    ap.report("runs/mc")                                            # report (HTML + Markdown)
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("analog_peft")
except metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: Public name → ``module:attribute`` (resolved lazily by :func:`__getattr__`).
_EXPORTS = {
    "convert": "analog_peft.convert:convert",
    "ConversionReport": "analog_peft.convert:ConversionReport",
    "load_classifier": "analog_peft.models:load_classifier",
    "load_causal_lm": "analog_peft.models:load_causal_lm",
    "load_tokenizer": "analog_peft.models:load_tokenizer",
    "attach": "analog_peft.methods:attach",
    "load_adapter": "analog_peft.methods:load_adapter",
    "merge_adapter": "analog_peft.methods:merge_adapter",
    "AdapterConfig": "analog_peft.methods:AdapterConfig",
    "GraspConfig": "analog_peft.methods:GraspConfig",
    "StochGraspConfig": "analog_peft.methods:StochGraspConfig",
    "LoraConfig": "analog_peft.methods:LoraConfig",
    "BitFitConfig": "analog_peft.methods:BitFitConfig",
    "IA3Config": "analog_peft.methods:IA3Config",
    "ParaConfig": "analog_peft.methods:ParaConfig",
    "FullConfig": "analog_peft.methods:FullConfig",
    "train": "analog_peft.training:train",
    "TrainConfig": "analog_peft.training:TrainConfig",
    "load_trained": "analog_peft.training:load_trained",
    "ChipProgrammer": "analog_peft.chips:ChipProgrammer",
    "deploy": "analog_peft.deploy:deploy",
    "run_montecarlo": "analog_peft.montecarlo.engine:run_montecarlo",
    "MonteCarloConfig": "analog_peft.montecarlo.engine:MonteCarloConfig",
    "MethodSpec": "analog_peft.montecarlo.engine:MethodSpec",
    "report": "analog_peft.montecarlo.report:write_report",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'analog_peft' has no attribute {name!r}")
    module, attr = target.split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _FrontDoor(types.ModuleType):
    """Keeps the verbs ``ap.convert`` / ``ap.deploy`` when their same-named submodules are imported (the import
    system would set the package attribute to the submodule); ``from analog_peft.convert import ...`` still works."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _FrontDoor
