"""Named RPU configurations for aihwkit's pure-PyTorch inference tiles.

Only ``TorchInferenceRPUConfig`` (and subclasses) are used: aihwkit's C++ simulator is compiled against
another torch and fails with this one, and the torch tile also runs on GPU.

Presets (``RPUPreset(name, **options).build()``):

* ``ideal`` — perfect forward (no DAC/ADC, no output noise, no weight scaling, one tile per layer): the
  converted model reproduces the digital one exactly. With a device model (e.g. relative Gaussian
  ``σ = η·max|W|``) it is the plain weight-noise setting of Joshi et al., Nat. Commun. 11, 2473 (2020).
* ``mapped`` — ``standard``'s weight mapping (512-row tiles, column-wise scaling to the conductance range
  with digital out-scaling) with a perfect periphery: isolates the device's weight noise from DAC/ADC and
  output noise. Column-wise mapping matters for device models with an additive conductance-noise floor
  (PCM, ReRAM): per-tile mapping puts most weights of layers with outliers near 0 µS, where that floor
  dominates.
* ``standard`` — the AIMC setup of Rasch et al., Nat. Commun. 14, 5282 (2023): 512-row tiles, 8-bit-like
  DAC/ADC (254 levels), output noise 0.04, column-wise weight scaling (ω = 1) with learned digital
  out-scaling, channel-wise remapping and clipping, learned input ranges, ADD_NORMAL weight noise during
  hardware-aware training, global drift compensation. ``weight_scaling_omega=1`` matters: aihwkit's default
  of 0 lets output noise swamp transformer weights (RoBERTa logits 111% off, ~3% with ω = 1).

Device noise (programming, drift, read) is *not* taken from the RPU config: chips are programmed by
:mod:`analog_peft.chips` with a :mod:`device_models` model and their own seeded generators.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aihwkit.inference import GlobalDriftCompensation
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.parameters import (
    InputRangeParameter,
    IOParameters,
    MappingParameter,
    PrePostProcessingParameter,
    WeightClipParameter,
    WeightModifierParameter,
    WeightRemapParameter,
)
from aihwkit.simulator.parameters.enums import (
    BoundManagementType,
    NoiseManagementType,
    WeightClipType,
    WeightModifierType,
    WeightRemapType,
)

PRESETS = ("ideal", "mapped", "standard")
#: presets whose analog forward equals the digital one before device noise (perfect periphery): the choice
#: between them is how the chips map weights to conductances, not a different trained model
EXACT_PRESETS = ("ideal", "mapped")


@dataclass
class RPUPreset:
    """A JSON-serialisable recipe for an RPU configuration: a preset name plus its options.

    Options of ``standard``: ``tile_size`` (rows per tile, 0 = one tile per layer), ``out_noise``,
    ``inp_res``/``out_res`` (DAC/ADC levels), ``modifier_std`` (HWA training weight noise, relative to the
    column max), ``input_range_init``. Options of ``ideal``: ``tile_size`` (default 0).
    """

    name: str = "standard"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in PRESETS:
            raise ValueError(
                f"unknown RPU preset {self.name!r}; available: {list(PRESETS)}. "
                "Pass a TorchInferenceRPUConfig instance for a custom configuration."
            )
        allowed = set(_OPTIONS[self.name])
        unknown = set(self.options) - allowed
        if unknown:
            raise ValueError(f"RPU preset {self.name!r} has no option(s) {sorted(unknown)}; options: {sorted(allowed)}")

    def build(self) -> TorchInferenceRPUConfig:
        opts = {**_OPTIONS[self.name], **self.options}
        return _BUILDERS[self.name](**opts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _perfect_periphery() -> dict[str, Any]:
    """Settings shared by the perfect-periphery presets: exact forward, no HWA noise, clipping or remapping."""
    return {
        "forward": IOParameters(is_perfect=True),
        "modifier": WeightModifierParameter(type=WeightModifierType.NONE),
        "clip": WeightClipParameter(type=WeightClipType.NONE),
        "remap": WeightRemapParameter(type=WeightRemapType.NONE),
        "drift_compensation": GlobalDriftCompensation(),
    }


def ideal_config(tile_size: int = 0) -> TorchInferenceRPUConfig:
    """Perfect forward, no weight scaling: analog outputs equal the digital ones."""
    return TorchInferenceRPUConfig(
        mapping=MappingParameter(
            digital_bias=True,
            weight_scaling_omega=0.0,
            max_input_size=tile_size,
            max_output_size=0,
        ),
        **_perfect_periphery(),
    )


def mapped_config(tile_size: int = 512) -> TorchInferenceRPUConfig:
    """Column-wise weight mapping onto ``tile_size``-row tiles, perfect periphery."""
    return TorchInferenceRPUConfig(
        mapping=MappingParameter(
            digital_bias=True,
            weight_scaling_omega=1.0,
            weight_scaling_columnwise=True,
            max_input_size=tile_size,
            max_output_size=0,
            learn_out_scaling=True,
            out_scaling_columnwise=True,
        ),
        **_perfect_periphery(),
    )


def standard_config(
    tile_size: int = 512,
    out_noise: float = 0.04,
    inp_res: float = 254.0,
    out_res: float = 254.0,
    modifier_std: float = 0.03,
    input_range_init: float = 3.0,
) -> TorchInferenceRPUConfig:
    """Rasch et al. 2023 AIMC setup (see module docstring); tested HWA configuration."""
    return TorchInferenceRPUConfig(
        mapping=MappingParameter(
            weight_scaling_omega=1.0,
            weight_scaling_columnwise=True,
            max_input_size=tile_size,
            max_output_size=0,
            digital_bias=True,
            learn_out_scaling=True,
            out_scaling_columnwise=True,
        ),
        forward=IOParameters(
            inp_res=inp_res,
            out_res=out_res,
            out_bound=10.0,
            out_noise=out_noise,
            bound_management=BoundManagementType.NONE,
            noise_management=NoiseManagementType.CONSTANT,
            nm_thres=1.0,
        ),
        remap=WeightRemapParameter(remapped_wmax=1.0, type=WeightRemapType.CHANNELWISE_SYMMETRIC),
        clip=WeightClipParameter(type=WeightClipType.FIXED_VALUE, fixed_value=1.0),
        modifier=WeightModifierParameter(
            type=WeightModifierType.ADD_NORMAL, std_dev=modifier_std, rel_to_actual_wmax=True
        ),
        pre_post=PrePostProcessingParameter(
            input_range=InputRangeParameter(
                enable=True,
                learn_input_range=True,
                init_value=input_range_init,
                init_from_data=100,
                init_std_alpha=3.0,
                decay=0.001,
            )
        ),
        drift_compensation=GlobalDriftCompensation(),
    )


_BUILDERS = {"ideal": ideal_config, "mapped": mapped_config, "standard": standard_config}
_OPTIONS: dict[str, dict[str, Any]] = {
    "ideal": {"tile_size": 0},
    "mapped": {"tile_size": 512},
    "standard": {
        "tile_size": 512,
        "out_noise": 0.04,
        "inp_res": 254.0,
        "out_res": 254.0,
        "modifier_std": 0.03,
        "input_range_init": 3.0,
    },
}


def resolve_rpu(rpu: str | RPUPreset | dict | TorchInferenceRPUConfig) -> TorchInferenceRPUConfig:
    """An RPU config from a preset name, an :class:`RPUPreset`, its dict, or a torch-tile config.

    Raises ``TypeError`` for configs that would build aihwkit's C++ tiles.
    """
    if isinstance(rpu, str):
        rpu = RPUPreset(rpu)
    elif isinstance(rpu, dict):
        rpu = RPUPreset(**rpu)
    if isinstance(rpu, RPUPreset):
        return rpu.build()
    if not isinstance(rpu, TorchInferenceRPUConfig):
        raise TypeError(
            f"{type(rpu).__name__} builds aihwkit's C++ simulator tiles, which do not work with this torch "
            "version. Use a preset name ('ideal', 'standard') or a TorchInferenceRPUConfig (or subclass)."
        )
    return rpu
