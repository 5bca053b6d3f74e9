"""Device models for analog in-memory computing: programming noise, conductance drift, read noise.

``get(name, **params)`` builds a preset, ``available()`` lists them. Each preset's docstring cites the
measurements it is calibrated on.
"""

from device_models.base import DeviceModel, DeviceModelError, ProgrammedState, make_generator
from device_models.registry import available, get, register

__all__ = [
    "DeviceModel",
    "DeviceModelError",
    "ProgrammedState",
    "available",
    "get",
    "make_generator",
    "register",
]
