"""The conversion an adapter was trained on, saved next to it as ``conversion.json``.

``convert`` records a :class:`ConversionConfig` on the model (RPU preset with its options, module selection,
exclusions); ``save_adapter`` writes it beside ``adapter_config.json`` with the head pooling and the base
model's name, and training writes it into the run directory. Consumers (``deploy``, hence the Monte Carlo, and
``load_trained``) rebuild the same conversion by default: :func:`resolve_rpu_choice` refuses a different RPU
preset for an adapter trained on a preset with real periphery (``standard``) unless the caller allows the
override, which the Monte Carlo then records in its manifest.

A record with ``rpu = None`` says the adapter was trained on the digital base (any preset is then a choice,
not an override). Adapters saved before this record existed have no file and get the caller's default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from torch import nn

FILE = "conversion.json"
#: the attribute ``convert`` stores the record under
ATTR = "analog_conversion_config"


class ConversionMismatch(ValueError):
    """A consumer asked for another conversion than the one an adapter was trained on."""


@dataclass(frozen=True)
class ConversionConfig:
    """How a base was converted: ``rpu`` (``RPUPreset`` dict, ``None`` = digital), modules, exclusions, head."""

    rpu: dict[str, Any] | None
    modules: str | list[str] = "blocks"
    exclude: list[str] = field(default_factory=list)
    pooling: str | None = None
    base_model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "conversion record") -> ConversionConfig:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown or "rpu" not in data:
            raise ValueError(f"{source}: not a conversion record (unknown keys {sorted(unknown)} or no 'rpu'); "
                             "re-save the adapter")
        return cls(**{**data, "exclude": list(data.get("exclude") or [])})

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        return path

    @property
    def preset(self) -> str:
        """The preset's name (``digital`` when trained on the digital base)."""
        return "digital" if self.rpu is None else str(self.rpu["name"])


def load_conversion(directory: str | Path | None) -> ConversionConfig | None:
    """The record saved in ``directory`` (``None`` when there is none)."""
    if directory is None:
        return None
    path = Path(directory) / FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-save the adapter or delete the file") from None
    return ConversionConfig.from_dict(data, source=str(path))


def record_of(model: nn.Module) -> ConversionConfig:
    """The model's conversion record, completed with its head pooling and base name (digital when unconverted)."""
    from analog_peft.heads import head_record
    from analog_peft.models import alias_of

    record = getattr(model, ATTR, None) or ConversionConfig(rpu=None)
    head = head_record(model)
    path = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    name = (alias_of(path) or path) if path else None
    return replace(record, pooling=head.pooling if head is not None else None, base_model=name)


def rpu_dict(rpu: Any) -> dict[str, Any]:
    """``rpu`` (a preset name, ``RPUPreset``, its dict, or a torch-tile config) as a comparable dict."""
    from analog_peft.presets import RPUPreset

    if isinstance(rpu, str):
        return RPUPreset(rpu).to_dict()
    if isinstance(rpu, dict):
        return RPUPreset(**rpu).to_dict()
    if isinstance(rpu, RPUPreset):
        return rpu.to_dict()
    return {"name": "custom", "options": {"repr": type(rpu).__name__}}


def resolve_rpu_choice(requested: Any, recorded: ConversionConfig | None, default: str, where: str,
                       allow_override: bool = False) -> tuple[Any, bool]:
    """The RPU to deploy with and whether it overrides the recorded one.

    A record of the digital base or of an exact preset (:data:`~analog_peft.presets.EXACT_PRESETS`: perfect
    periphery, the digital function) binds nothing: ``requested``, or ``default`` when None. A record of any
    other preset (``standard``: input ranges, ADC/DAC, output noise the adapter was trained around) is taken
    when ``requested`` is None; a different request raises :class:`ConversionMismatch` unless ``allow_override``.
    """
    from analog_peft.presets import EXACT_PRESETS

    if recorded is None or recorded.rpu is None or recorded.preset in EXACT_PRESETS:
        return (default if requested is None else requested), False
    if requested is None or rpu_dict(requested) == recorded.rpu:
        return recorded.rpu, False
    if allow_override:
        return requested, True
    raise ConversionMismatch(
        f"{where} was trained on rpu {recorded.rpu} ({FILE}) but {rpu_dict(requested)} was asked for: drop the rpu "
        "option to use the recorded conversion, or allow the override (montecarlo --allow-conversion-override; "
        "it is recorded in the manifest)"
    )
