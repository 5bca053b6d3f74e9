"""GRASP configuration (docs/methods.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError


@dataclass
class GraspConfig(AdapterConfig):
    """GRASP (Bal & Sengupta, arXiv 2512.04296): ``x̃_i = (x_i − β_g(i)) / γ_g(i)``, then ``y = W x̃ + b``.

    ``2K`` parameters per adapted layer (``γ, β ∈ R^K``, identity-initialised). Dimension ``i`` of the
    input belongs to group ``g(i) = π(i) mod K`` for a fixed random permutation ``π`` drawn from
    (``seed``, layer name) and saved with the adapter.

    Args:
        k: Number of groups per layer, ``1 <= k <= D`` (input width of every target).
        gamma_eps: **[choice]** division guard: ``γ`` is used as ``sign(γ)·max(|γ|, gamma_eps)``
            (sign(0) = +1), so the scale can never reach 0.
        target_roles: default **[choice]** every linear layer of every block (Q, K, V, O, FFN in/out).
    """

    method: ClassVar[str] = "grasp"
    default_roles: ClassVar[tuple[str, ...]] = ("all_linear",)

    k: int = 16
    gamma_eps: float = 1e-3

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k <= 0:
            raise AdapterError(
                f"{self.method}: k (number of groups) must be a positive integer, got {self.k!r}; "
                "typical values are 8-128"
            )
        if not self.gamma_eps > 0:
            raise AdapterError(f"{self.method}: gamma_eps must be > 0, got {self.gamma_eps!r}")
