"""Former names of config fields, still read from files written before a rename.

``device`` meant a device model in the Monte Carlo and in ``noise`` tables but a torch device in training
configs; the fields are now ``device_model`` and ``torch_device`` everywhere. Run directories, adapters
and TOML files written before keep loading: their former keys are read under the new names.
"""

from __future__ import annotations

from typing import Any

MONTECARLO = {"device": "device_model"}
TRAIN = {"device": "torch_device"}
NOISE = {"device": "device_model"}
SIGMA_TARGET = {"device": "device_model"}


def current_names(data: dict[str, Any], renames: dict[str, str], what: str) -> dict[str, Any]:
    """A copy of ``data`` with former keys under their current names (both given: a one-line error)."""
    out = dict(data)
    for old, new in renames.items():
        if old in out:
            if new in out:
                raise ValueError(f"{what}: both {old!r} (the former name) and {new!r} are set; keep only {new!r}")
            out[new] = out.pop(old)
    return out
