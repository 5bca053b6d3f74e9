"""The device-model interface: target weights → one chip's programmed devices → weights at time t.

A device model turns the weight matrix held by one analog tile into what a real array of devices would
hold after programming (``program``) and after waiting ``t`` seconds (``read``: drift plus accumulated
1/f read noise). Every random draw comes from the ``torch.Generator`` passed in, never from torch's
global RNG, so one chip is a pure function of its seed.

Conductance-based models (PCM, HERMES, ReRAM) map weights to a differential pair of conductances
``(g+, g-)`` with the tile's largest |w| at ``g_max`` (as aihwkit's ``SinglePairConductanceConverter``),
apply the device physics per conductance, and map back.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Generator, Tensor

from device_models._workspace import CHUNK, Workspace, chunks
from device_models.portable import normal

__all__ = ["CHUNK", "DeviceModel", "DeviceModelError", "ProgrammedState", "Workspace", "chunks", "make_generator", "randn"]


class DeviceModelError(ValueError):
    """Invalid device-model name, parameter or inference time."""


@dataclass
class ProgrammedState:
    """Everything drawn once when one tile of one chip is programmed.

    ``tensors`` holds model-specific draws (e.g. programmed conductances and drift exponents);
    ``scale`` converts weights to conductance units (µS per weight unit), 1.0 for weight-space models;
    ``offset`` is the weight mapped to the lowest conductance by single-device (non-differential) mappings.
    """

    target: Tensor
    tensors: dict[str, Tensor] = field(default_factory=dict)
    scale: float = 1.0
    offset: float = 0.0


@dataclass
class DeviceModel(ABC):
    """A device model: programming noise, drift and read noise of one technology.

    Subclasses are dataclasses whose fields are the model's parameters; ``to_dict``/``from_dict``
    make them JSON-serialisable, so a run records exactly which physics it used.
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    #: Inference times (s) the model was fitted at; ``None`` means any ``t >= 0``.
    fitted_times: ClassVar[tuple[float, ...] | None] = None

    @abstractmethod
    def program(self, weights: Tensor, generator: Generator) -> ProgrammedState:
        """Program ``weights`` (one tile's matrix) once: draw programming noise and drift parameters."""

    @abstractmethod
    def read(self, state: ProgrammedState, t: float, generator: Generator) -> Tensor:
        """Weights of a programmed tile at ``t`` seconds after programming (drift + read noise)."""

    # -- allocation-free variants (used by analog_peft.chips; same draws, same bits) ---------------
    # Models may override these to compute in place in ``work``'s reusable buffers; the defaults fall
    # back to ``program``/``read``. An override must give bit-identical results to the plain method.
    # Every formula uses device_models.portable (never torch's randn/log/exp/pow or float reductions),
    # so a chip's bits do not depend on the CPU, the thread count or the chunking.

    def program_into(
        self,
        weights: Tensor,
        generator: Generator,
        work: Workspace,
        reuse: ProgrammedState | None = None,
    ) -> ProgrammedState:
        """``program(weights, generator)``, optionally storing the draws in ``reuse``'s tensors."""
        return self.program(weights, generator)

    def read_into(
        self,
        state: ProgrammedState,
        t: float,
        generator: Generator,
        out: Tensor,
        work: Workspace,
    ) -> None:
        """Write ``read(state, t, generator)`` into ``out`` (a tensor shaped like the target)."""
        out.copy_(self.read(state, t, generator))

    def programmed_into(self, state: ProgrammedState, out: Tensor, work: Workspace) -> None:
        """Write the weights right after programming (no drift, no read noise) into ``out``."""
        fn = getattr(self, "programmed_weights", None)
        if fn is not None:
            out.copy_(fn(state))
        else:
            out.copy_(self.read(state, 0.0, make_generator(0, state.target.device)))

    # -- helpers ---------------------------------------------------------------------------------
    def check_time(self, t: float) -> None:
        """Raise :class:`DeviceModelError` unless ``t`` is a time this model can be read at."""
        if not math.isfinite(t) or t < 0:
            raise DeviceModelError(f"inference time must be a finite number of seconds >= 0, got {t!r}")
        if self.fitted_times is not None and not any(
            math.isclose(t, ft, rel_tol=1e-9, abs_tol=1e-9) for ft in self.fitted_times
        ):
            raise DeviceModelError(
                f"device model {self.name!r} is only fitted at t = {list(self.fitted_times)} s; "
                f"got t = {t}. Use one of those times, or a model with a drift law (e.g. 'pcm')."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description: ``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": asdict(self)}

    @classmethod
    def param_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def __str__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in asdict(self).items())
        return f"{self.name}({params})"


def randn(like: Tensor, generator: Generator) -> Tensor:
    """Standard normal draws shaped like ``like`` from ``generator``: :func:`device_models.portable.normal`
    (the same bits on every CPU ISA and thread count; torch's ``randn`` is not)."""
    return normal(like, generator)


def make_generator(seed: int, device: torch.device | str = "cpu") -> Generator:
    """A torch generator on ``device`` seeded with ``seed`` (any Python int, reduced to 63 bits)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) % (2**63 - 1))
    return gen
