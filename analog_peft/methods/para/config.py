"""PARA configuration (Liu et al., EMNLP 2024; docs/methods.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError

ACTIVATIONS = ("silu", "gelu", "relu", "tanh")


@dataclass
class ParaConfig(AdapterConfig):
    """PARA: per block, ``v = Up(act(Down(pool(h))))`` with ``h`` the block's input hidden states; the
    vectors ``1 + v`` scale Q, V and the FFN activation (the input of the FFN down projection).

    **[choice]** mean pooling over the non-padding prompt tokens (the attention mask is captured by a
    forward pre-hook on the top model), ``act = SiLU``, ``r = 12``, ``Up`` zero-initialised (identity at
    start). Per block ``d·r + r + r·n + n`` parameters with ``n = d_Q + d_V + d_FFN``. For decoders the
    vectors are computed at prefill (the first forward without a KV cache) and reused on later cached
    steps, and in eval mode also when a call continues the previous prompt without cache (``generate``
    with ``use_cache=False``), so generation is the same with and without KV cache.

    Args:
        r: Bottleneck width of the generator.
        activation: One of ``silu``, ``gelu``, ``relu``, ``tanh``.
        decoder: Whether to reuse prompt vectors across generation steps; None: auto (causal LMs).
        target_roles: default Q, V and FFN-down (on GPT-2 the Q and V slices of the fused ``c_attn``).
    """

    method: ClassVar[str] = "para"
    default_roles: ClassVar[tuple[str, ...]] = ("q", "v", "ffn_down")

    r: int = 12
    activation: str = "silu"
    decoder: bool | None = None

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.r, int) or self.r <= 0:
            raise AdapterError(f"para: r must be a positive integer, got {self.r!r}")
        if self.activation not in ACTIVATIONS:
            raise AdapterError(f"para: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
