"""Device models for analog in-memory computing: programming noise, conductance drift, read noise.

``get(name, **params)`` builds a preset, ``available()`` lists them. Each preset's docstring cites the
measurements it is calibrated on:

* ``pcm`` — PCM, Nandakumar et al. ICECS 2019 (aihwkit ``PCMLikeNoiseModel``);
* ``hermes`` — HERMES-chip PCM, Le Gallo et al. Nat. Electron. 2023 (aihwkit ``HermesNoiseModel``);
* ``reram`` — ReRAM, Wan et al. Nature 2022, only at t = 1 s, 1 day, 2 days (aihwkit ``ReRamWan2022NoiseModel``);
* ``reram_cmo`` — CMO/HfOx ReRAM, Falcone et al. (aihwkit ``ReRamCMONoiseModel``);
* ``gaussian`` — relative Gaussian programming noise σ = η · scale(W), Joshi et al. Nat. Commun. 2020;
* ``fitted_pcm`` — a PCM-like model fitted to your measurements with :func:`fit_pcm_like`.
"""

from device_models.base import DeviceModel, DeviceModelError, ProgrammedState, Workspace, make_generator
from device_models.conductance import ConductanceModel, PowerLawDriftModel
from device_models.fitted import FittedPCM, fit_pcm_like
from device_models.gaussian import Gaussian
from device_models.hermes import Hermes
from device_models.pcm import PCM
from device_models.registry import available, get, register
from device_models.reram import ReRAMCMO, ReRAMWan2022

__all__ = [
    "PCM",
    "ConductanceModel",
    "DeviceModel",
    "DeviceModelError",
    "FittedPCM",
    "Gaussian",
    "Hermes",
    "PowerLawDriftModel",
    "ProgrammedState",
    "ReRAMCMO",
    "ReRAMWan2022",
    "Workspace",
    "available",
    "fit_pcm_like",
    "get",
    "make_generator",
    "register",
]
