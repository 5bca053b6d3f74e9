"""Hardware-aware adapter training: ``train(TrainConfig(...))`` and ``analog-peft train``.

>>> from analog_peft.training import TrainConfig, train, load_trained
>>> result = train(TrainConfig(method="grasp", train_examples=2000, out_dir="runs/grasp"))
>>> model, adapted, config = load_trained("runs/grasp")     # what the Monte Carlo engine loads
"""

from analog_peft.training.config import ConfigError, TrainConfig
from analog_peft.training.evaluate import evaluate
from analog_peft.training.generation import generate_texts
from analog_peft.training.loop import TrainResult, train
from analog_peft.training.noise import NoiseInjector
from analog_peft.training.runlog import read_log
from analog_peft.training.setup import load_trained

__all__ = [
    "ConfigError",
    "NoiseInjector",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "generate_texts",
    "load_trained",
    "read_log",
    "train",
]
