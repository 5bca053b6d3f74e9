"""Exceptions raised by the adapter methods (all subclass :class:`ValueError`)."""

from __future__ import annotations


class AdapterError(ValueError):
    """Invalid adapter configuration, target, or use (the message names the problem and the fix)."""


class AdapterFileError(AdapterError):
    """A saved adapter (``adapter_config.json`` / ``adapter.safetensors``) is unreadable or does not fit."""
