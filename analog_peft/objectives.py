"""Training objectives shared by the adapter methods: the noise-aware spread KL of StochGRASP."""

from __future__ import annotations

import torch
from torch import Tensor


def spread_kl(sigma: Tensor, sigma_target: Tensor) -> Tensor:
    """Elementwise ``KL(N(0, σ²) ‖ N(0, σ_t²)) = log(σ_t/σ) + σ²/(2σ_t²) − ½`` (docs/methods.md §2).

    Zero iff ``σ = σ_t``; it pulls a learned spread toward the device's noise profile instead of letting
    the task loss collapse it to zero.
    """
    sigma_target = sigma_target.to(sigma)
    return torch.log(sigma_target / sigma) + sigma.pow(2) / (2 * sigma_target.pow(2)) - 0.5

