"""Refusing non-finite model outputs: an evaluation stops instead of scoring NaN logits as some class."""

from __future__ import annotations

import torch


class NonFiniteError(ValueError):
    """A model produced NaN/inf outputs; the message names where (method, chip, time) and what to check."""


def check_finite_logits(logits: torch.Tensor, where: str, hint: str = "") -> None:
    """Raise :class:`NonFiniteError` naming ``where`` if any of ``logits`` is NaN or inf."""
    finite = torch.isfinite(logits)
    if bool(finite.all()):
        return
    bad = int((~finite).sum())
    hint = hint or ("check the device model's parameters (an absurd noise level overflows the analog forward) "
                    "and the adapter's tensors")
    raise NonFiniteError(f"{where}: {bad} of {logits.numel()} logits are not finite (NaN/inf); {hint}")
