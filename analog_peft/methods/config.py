"""The configuration base class shared by every adapter method, and ``config_from_dict``.

Each method defines a dataclass subclass with a unique ``method`` name; subclasses register themselves,
so ``config_from_dict(json.load(...))`` rebuilds any of them and rejects unknown methods or fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from analog_peft.methods.errors import AdapterError

_CONFIGS: dict[str, type[AdapterConfig]] = {}

#: Keys written next to the config fields in ``adapter_config.json`` (not config fields themselves).
META_KEYS = ("method", "method_version", "fingerprint", "format", "tensor_sha256")


@dataclass
class AdapterConfig:
    """Fields common to every method.

    Args:
        target_modules: Modules to adapt, overriding ``target_roles``. A list of names matched as suffixes
            like PEFT (``"query"`` matches ``...attention.self.query``) or regexes prefixed ``"re:"``
            (full match on the module name, e.g. ``"re:.*attention.*(query|value)$"``); a single string
            is one pattern.
        target_roles: Roles from :mod:`analog_peft.architectures` (``q``, ``k``, ``v``, ``o``, ``qkv``,
            ``ffn_up``, ``ffn_gate``, ``ffn_down``) used when ``target_modules`` is None; None means the
            method's default. ``q``/``k``/``v`` resolve to the fused ``qkv`` projection on GPT-2.
        exclude_modules: Patterns (same syntax as ``target_modules``) removed from the targets.
        train_head: Keep the task head (e.g. ``classifier``, ``score``) trainable, digital and saved with
            the adapter. None: True when the model has a head that is not tied to the input embeddings.
        head_modules: Names of the head modules; None uses the architecture table (or ``classifier``/``score``).
        seed: Seed of every random choice made at attach time (GRASP grouping, LoRA init, ...).
    """

    method: ClassVar[str] = ""
    #: Version of the method's parameterisation; saved adapters with a newer version are refused.
    version: ClassVar[int] = 1
    #: Roles adapted when neither ``target_modules`` nor ``target_roles`` is given.
    default_roles: ClassVar[tuple[str, ...]] = ()
    #: Whether the method wraps target modules (False for BitFit / full fine-tuning).
    uses_targets: ClassVar[bool] = True

    target_modules: list[str] | str | None = None
    target_roles: list[str] | None = None
    exclude_modules: list[str] | None = None
    train_head: bool | None = None
    head_modules: list[str] | None = None
    seed: int = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            _CONFIGS[cls.method] = cls

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, tuple):
            self.target_modules = list(self.target_modules)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`AdapterError` for invalid field values (subclasses extend this)."""
        for name in ("target_modules", "exclude_modules", "head_modules", "target_roles"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | list | tuple):
                raise AdapterError(f"{type(self).__name__}.{name} must be a string or a list of strings")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict: ``{"method": ..., "method_version": ..., <fields>}``."""
        return {"method": self.method, "method_version": self.version, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def registered_configs() -> dict[str, type[AdapterConfig]]:
    """Method name → config class, for every imported method."""
    return dict(_CONFIGS)


def config_from_dict(data: dict[str, Any], source: str | Path | None = None) -> AdapterConfig:
    """Rebuild a config from :meth:`AdapterConfig.to_dict` output (``source`` names the file in errors)."""
    where = f" in {source}" if source else ""
    if not isinstance(data, dict):
        raise AdapterError(f"adapter config{where} must be a JSON object, got {type(data).__name__}")
    method = data.get("method")
    if method not in _CONFIGS:
        raise AdapterError(f"unknown adapter method {method!r}{where}; known methods: {sorted(_CONFIGS)}")
    cls = _CONFIGS[method]
    saved_version = data.get("method_version", cls.version)
    if not isinstance(saved_version, int) or saved_version > cls.version:
        raise AdapterError(
            f"adapter{where} was written by method {method!r} version {saved_version!r}, newer than this "
            f"installation's version {cls.version}; upgrade analog_peft to load it"
        )
    values = {k: v for k, v in data.items() if k not in META_KEYS}
    unknown = sorted(set(values) - set(cls.field_names()))
    if unknown:
        raise AdapterError(
            f"unknown field(s) {unknown} for method {method!r}{where}; valid fields: {cls.field_names()}"
        )
    try:
        return cls(**values)
    except TypeError as exc:  # pragma: no cover - defensive, fields are checked above
        raise AdapterError(f"invalid config for method {method!r}{where}: {exc}") from exc
