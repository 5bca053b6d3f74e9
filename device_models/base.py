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
    #: ``True`` when ``program_into``/``read_into`` reproduce, on one torch thread, the results of the
    #: plain methods at ``threads`` torch threads (see :func:`thread_ranges`).
    thread_exact: ClassVar[bool] = False

    def program_into(
        self,
        weights: Tensor,
        generator: Generator,
        work: Workspace,
        reuse: ProgrammedState | None = None,
        threads: int | None = None,
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
        threads: int | None = None,
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


class Workspace:
    """Reusable scratch buffers for allocation-free device-model arithmetic.

    Allocating fresh multi-MB tensors for every intermediate makes the OS map and zero new pages each
    time, which costs more than the arithmetic itself; reusing a few buffers (sized to the largest tile)
    avoids that. ``get(name, shape, like)`` returns a contiguous view of buffer ``name``, grown on demand;
    its contents are undefined.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: torch.Size | tuple[int, ...], like: Tensor) -> Tensor:
        n = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = torch.empty(n, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf[:n].view(shape)

    def clear(self) -> None:
        """Free every buffer."""
        self._buffers.clear()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._buffers.values())


#: Elements per chunk of the CPU element-wise chains (see :func:`chunks`): 512 KiB per float32 buffer,
#: so a chunk's few buffers stay in a core's L2 cache through a chain of ops, and large enough that
#: Python/dispatch overhead (a few µs per op) stays small. Measured on the benchmark stack (7.1M weights,
#: PCM, 2 threads, idle): 16384 → program 0.14 s, drift 0.10 s; 131072 → 0.08 s, 0.065 s; 524288 → 0.072 s,
#: 0.060 s. The chunk size does not change any result (only IEEE-exact ops are chunked).
CHUNK = 131072


def chunks(n: int, device: torch.device) -> list[slice]:
    """Slices covering ``range(n)`` for running a chain of IEEE-exact element-wise ops chunk by chunk.

    On CPU, one op on a whole multi-MB tensor is split over torch's threads: with other jobs on the
    machine, each such op waits for the slowest (descheduled) thread, and streams every buffer through
    memory once per op. Running a whole chain chunk by chunk on one thread avoids both. Only ops whose
    result does not depend on how the elements are split may be chunked (``+ - * /``, ``abs``, ``neg``,
    ``clamp``, ``reciprocal``); ``pow``/``log``/``exp`` (SIMD and scalar code paths round differently at
    split points) and reductions run on the whole tensor, exactly as before. On GPUs: one slice.
    """
    if device.type != "cpu" or n <= CHUNK:
        return [slice(0, n)]
    return [slice(i, min(i + CHUNK, n)) for i in range(0, n, CHUNK)]


#: ATen's parallelisation grain (``at::internal::GRAIN_SIZE``): smaller ops run on the calling thread.
GRAIN = 32768


def thread_ranges(n: int, threads: int | None) -> list[slice]:
    """The element ranges torch's ``parallel_for`` (OpenMP) gives each of ``threads`` threads in an
    element-wise op over ``n`` contiguous elements: ``min(threads, ceil(n / GRAIN))`` ranges of
    ``ceil(n / that)`` elements. Each range ends in a few elements computed by the scalar (not SIMD) code
    path, which rounds ``pow``/``log`` differently; calling the op once per range on one thread reproduces
    the ``threads``-thread result bit for bit. ``None``: the whole tensor in one call (torch splits it).
    """
    if threads is None or threads <= 1 or n < GRAIN:
        return [slice(0, n)]
    used = min(threads, -(-n // GRAIN))
    size = -(-n // used)
    return [slice(i * size, min(n, (i + 1) * size)) for i in range(used) if i * size < n]


def randn(like: Tensor, generator: Generator) -> Tensor:
    """Standard normal draws shaped like ``like`` from ``generator`` (on ``like``'s device)."""
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def make_generator(seed: int, device: torch.device | str = "cpu") -> Generator:
    """A torch generator on ``device`` seeded with ``seed`` (any Python int, reduced to 63 bits)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed) % (2**63 - 1))
    return gen
