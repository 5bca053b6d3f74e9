"""Base-weight noise in the training loop, resampled every batch.

* ``device``: each step ``s`` programs a fresh chip from a :mod:`device_models` model through
  :class:`~analog_peft.chips.ChipProgrammer` (chip index ``s``, drawn from ``derive_seed(seed, "train-noise")``
  so training chips never coincide with the Monte Carlo's evaluation chips), reads it at ``t`` (drift
  compensation included), runs forward/backward on those weights and restores the targets afterwards.
* ``aihwkit_modifier``: aihwkit's own training-time weight modifier (``ADD_NORMAL`` / ``MULT_NORMAL``,
  σ = η·max|W| per tile), applied in train-mode forwards of the tiles; its draws use torch's global RNG,
  which the loop seeds per step.

Analog tiles run in eval mode otherwise: aihwkit's train-mode forward drops the drift compensation α and
applies the preset's own modifier (aihwkit-notes §4.1, trap 3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn

from analog_peft.training.config import NoiseConfig


def modifier_rpu(preset: str, noise: NoiseConfig) -> Any:
    """The preset's RPU config with aihwkit's training weight modifier set from ``noise``."""
    from aihwkit.simulator.parameters import WeightModifierParameter
    from aihwkit.simulator.parameters.enums import WeightModifierType

    from analog_peft.presets import RPUPreset

    kinds = {"add_normal": WeightModifierType.ADD_NORMAL, "mult_normal": WeightModifierType.MULT_NORMAL}
    kind = str(noise.modifier).lower()
    if kind not in kinds:
        raise ValueError(f"noise.modifier must be one of {sorted(kinds)}, got {kind!r}")
    rpu = RPUPreset(preset).build()
    rpu.modifier = WeightModifierParameter(type=kinds[kind], std_dev=float(noise.eta), rel_to_actual_wmax=True)
    return rpu


def analog_modules(model: nn.Module) -> list[nn.Module]:
    from aihwkit.nn import AnalogLinear

    return [m for m in model.modules() if isinstance(m, AnalogLinear)]


class NoiseInjector:
    """Puts the base model in its per-step noisy state for one training step (see module docstring)."""

    def __init__(self, model: nn.Module, noise: NoiseConfig | dict[str, Any], seed: int) -> None:
        noise = NoiseConfig.coerce(noise)
        self.model = model
        self.mode = noise.mode
        self.t = float(noise.t)
        self.analog = analog_modules(model)
        self.programmer = None
        if self.mode == "device":
            from analog_peft.chips import ChipProgrammer, derive_seed

            self.programmer = ChipProgrammer(
                model, noise.device_model, seed=derive_seed(seed, "train-noise"),
                compensate_drift=bool(noise.compensate_drift),
            )

    def train_mode(self) -> None:
        """``model.train()`` (dropout on) with the analog tiles in eval mode unless the modifier is used."""
        self.model.train()
        if self.mode != "aihwkit_modifier":
            for m in self.analog:
                m.eval()

    @contextmanager
    def step(self, step: int) -> Iterator[None]:
        """Noisy base weights for training step ``step``; the targets are restored on exit."""
        if self.programmer is None:
            yield
            return
        self.programmer.retarget(changed_only=True)  # methods that train tile weights (full) moved them
        self.programmer.program(step)
        if self.t:
            self.programmer.drift(self.t)
        try:
            yield
        finally:
            self.programmer.reset()
