"""Name → device-model class registry: ``get("pcm")``, ``available()``, ``register``."""

from __future__ import annotations

from typing import Any

from device_models.base import DeviceModel, DeviceModelError

_REGISTRY: dict[str, type[DeviceModel]] = {}


def register(cls: type[DeviceModel]) -> type[DeviceModel]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise DeviceModelError(f"{cls.__name__} needs a non-empty class attribute `name` to be registered")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of every registered device model."""
    return sorted(_REGISTRY)


def get(name: str | DeviceModel | dict, **params: Any) -> DeviceModel:
    """Build a device model by name (``get("gaussian", eta=0.01)``), from ``to_dict()`` output, or pass through."""
    if isinstance(name, DeviceModel):
        if params:
            raise DeviceModelError("pass parameters either in the DeviceModel instance or as keywords, not both")
        return name
    if isinstance(name, dict):
        # both ``{"name": "gaussian", "params": {"eta": 0.01}}`` (to_dict) and ``{"name": "gaussian", "eta": 0.01}``;
        # every other key is a parameter, so a misspelt one is refused below instead of silently ignored
        if "name" not in name:
            raise DeviceModelError(f"device-model dict needs a 'name' key, got keys {sorted(name)}")
        flat = {k: v for k, v in name.items() if k not in ("name", "params")}
        nested = name.get("params", {}) or {}
        both = set(flat) & set(nested)
        if both:
            raise DeviceModelError(f"device-model dict gives {sorted(both)} both at top level and under 'params'")
        return get(name["name"], **{**nested, **flat, **params})
    key = str(name).lower().replace("-", "_")
    if key not in _REGISTRY:
        raise DeviceModelError(
            f"unknown device model {name!r}; available: {available()}. "
            "Register your own with @device_models.register or fit one with device_models.fit_pcm_like."
        )
    cls = _REGISTRY[key]
    unknown = set(params) - set(cls.param_names())
    if unknown:
        raise DeviceModelError(
            f"device model {key!r} has no parameter(s) {sorted(unknown)}; its parameters are {cls.param_names()}"
        )
    return cls(**params)
