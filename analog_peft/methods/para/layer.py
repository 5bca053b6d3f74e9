"""The PARA layer: rescales Q/V outputs or the FFN activation by the block's generated vector."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from analog_peft.methods.errors import AdapterError
from analog_peft.methods.para.config import ParaConfig
from analog_peft.methods.scaling import ScaleLayer, Slices
from analog_peft.methods.targets import Target


@dataclass
class ParaState:
    """Per-call state shared by a model's PARA layers: the block vectors and the pooling mask."""

    vectors: dict[str, Tensor] = field(default_factory=dict)
    mask: Tensor | None = None
    prompt_ids: Tensor | None = None
    reuse: bool = False


class ParaLayer(ScaleLayer):
    """Scales by ``1 + v[:, offset:offset+n]`` of its block's generated vector ``v`` (``[B, n_block]``)."""

    def __init__(
        self, target: Target, config: ParaConfig, mode: str, slices: Slices | None, state: ParaState, offset: int
    ) -> None:
        super().__init__(target, config, mode, slices)
        self.state, self.block, self.offset = state, target.block, offset

    def scale_vector(self) -> Tensor:
        vectors = self.state.vectors.get(self.block)
        if vectors is None:
            raise AdapterError(
                f"para: no prompt vector for block {self.block!r}; call the adapted model (not a sub-module)"
            )
        return 1 + vectors[:, self.offset : self.offset + self.scaled]
