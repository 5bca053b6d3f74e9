"""Versions of the packages a result depends on (Monte Carlo manifests, training summaries)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ("analog-peft", "torch", "aihwkit", "transformers", "peft", "numpy", "scipy", "pandas")


def package_versions() -> dict[str, str]:
    """``{"python": ..., <package>: <version> or "not installed"}`` for :data:`PACKAGES`."""
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out
