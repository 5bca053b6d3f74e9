"""Device model × RPU preset sanity checks that warn instead of failing.

Conductance-based device models (PCM, HERMES, ReRAM, fitted PCM) map each tile's largest |w| to ``g_max``. The
``ideal`` preset puts a whole layer on one tile without column-wise scaling, so in layers with outlier weights
most devices sit near 0 µS, where the additive conductance-noise floor dominates: the output error reaches
~100 %. The ``mapped`` preset (column-wise scaling, 512-row tiles) is the setting meant for those models.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import device_models
from device_models.conductance import ConductanceModel

log = logging.getLogger("analog_peft")


def is_layer_mapped(rpu: Any) -> bool:
    """Whether ``rpu`` (preset name, preset dict, ``RPUPreset`` or RPU config) scales weights per layer."""
    if isinstance(rpu, str):
        return rpu == "ideal"
    if isinstance(rpu, dict):
        return rpu.get("name") == "ideal"
    name = getattr(rpu, "name", None)
    if isinstance(name, str):
        return name == "ideal"
    mapping = getattr(rpu, "mapping", None)
    return mapping is not None and not getattr(mapping, "weight_scaling_columnwise", False)


def warn_if_layer_mapped(device: Any, rpu: Any, where: str) -> bool:
    """Warn (``warnings`` + a log line) when a conductance device model runs on layer-mapped tiles."""
    dm = device_models.get(device)
    if not isinstance(dm, ConductanceModel) or not is_layer_mapped(rpu):
        return False
    msg = (
        f"{where}: device model {dm.name!r} maps conductances to the largest |w| of the whole layer on the "
        "'ideal' preset, so most devices sit near 0 µS where the noise floor dominates (~100 % output error); "
        "use the 'mapped' preset (rpu = 'mapped': column-wise scaling, 512-row tiles)"
    )
    warnings.warn(msg, UserWarning, stacklevel=3)
    log.warning(msg)
    return True
