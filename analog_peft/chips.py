"""Seeded chips: program a converted model as chip ``k`` with a device model, drift it to time ``t``, reset.

``ChipProgrammer(model, "pcm", seed=0)`` snapshots every analog tile's target weights once. Then
``program(k)`` draws chip ``k``'s programming noise and drift parameters, and ``drift(t)`` sets the tiles
to chip ``k``'s weights ``t`` seconds after programming (drift + accumulated read noise) with global drift
compensation. Every draw comes from a generator seeded by ``(seed, chip, tile, purpose[, t])``, so chip
``k`` at time ``t`` is bit-identical in any order, in a fresh process, on any worker, and independent of
which other chips or times were evaluated. ``reset()`` restores the target weights without reloading.

This replaces aihwkit's ``program_analog_weights``/``drift_analog_weights``: those draw from torch's global
RNG, keep their reference outside the state dict (so retrained analog weights are silently discarded) and
read drift compensation through a full tile forward. Here the target is an explicit snapshot, and a
change of the analog weights after the snapshot is detected and refused.

Global drift compensation [choice]: per tile, ``α(t) = mean|W_prog| / mean|W(t)|`` computed from the
weights (the ideal read-out of aihwkit's ``GlobalDriftCompensation`` with one-hot inputs, without
periphery noise); ``W_prog`` is the chip right after programming (t = 0).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor, nn

import device_models
from analog_peft.convert import analog_tiles
from device_models import DeviceModel, ProgrammedState, Workspace, make_generator


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of parts (stable across processes and Python versions)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class _Tile:
    key: str
    tile: TorchInferenceTile
    target: Tensor
    state: ProgrammedState | None = None
    baseline: float = 1.0
    version: tuple[int, int] = (0, 0)


class ChipProgrammer:
    """Program, drift and reset the analog tiles of one converted model.

    Args:
        model: a model converted with :func:`analog_peft.convert.convert`.
        device: a :mod:`device_models` name, dict or instance; ``None`` programs the exact targets.
        seed: the run seed; chip ``k`` draws from ``derive_seed(seed, k, ...)``.
        compensate_drift: apply global drift compensation (see module docstring).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | dict | DeviceModel | None = "pcm",
        seed: int = 0,
        compensate_drift: bool = True,
    ) -> None:
        self.model = model
        self.device_model = device_models.get(device) if device is not None else None
        self.seed = int(seed)
        self.compensate_drift = compensate_drift
        self.chip: int | None = None
        self.t: float | None = None
        tiles = analog_tiles(model)
        if not tiles:
            raise ValueError("model has no analog tiles: convert it with analog_peft.convert(...) first")
        self._tiles: list[_Tile] = []
        counts: dict[str, int] = {}
        for layer, tile in tiles:
            idx = counts[layer] = counts.get(layer, -1) + 1
            weight = tile.tile.weight
            self._tiles.append(_Tile(f"{layer}#{idx}", tile, weight.detach().clone()))
        self._work = Workspace()
        self._remember_versions()

    # -- public verbs ----------------------------------------------------------------------------
    @torch.no_grad()
    def program(self, chip: int) -> ChipProgrammer:
        """Program every tile as chip ``chip`` (weights right after programming, t = 0)."""
        self._check_unchanged()
        dm, work = self.device_model, self._work
        for tl in self._tiles:
            weight = tl.tile.tile.weight
            if dm is None:
                tl.state = ProgrammedState(target=tl.target)
                tl.baseline = 1.0
                weight.data.copy_(tl.target)
                _set_alpha(tl.tile, 1.0)
                continue
            reuse = tl.state if tl.state is not None else work.spare.pop(tl.key, None)
            tl.state = dm.program_into(tl.target, self._gen(tl, chip, "program"), work, reuse)
            dm.programmed_into(tl.state, weight.data, work)  # the chip at t = 0, written directly
            tl.baseline = self._mean_abs(weight)
            _set_alpha(tl.tile, 1.0)  # = baseline / mean|W(0)|, exactly
        self._remember_versions()
        self.chip, self.t = int(chip), 0.0
        return self

    @torch.no_grad()
    def drift(self, t: float) -> ChipProgrammer:
        """Set the tiles to the programmed chip's weights ``t`` seconds after programming.

        ``t = 0`` is the chip right after programming (no drift, no accumulated read noise).
        """
        if self.chip is None:
            raise RuntimeError("no chip is programmed: call program(chip) before drift(t)")
        self._check_unchanged()
        t = float(t)
        dm, work = self.device_model, self._work
        if dm is not None and t != 0.0:
            dm.check_time(t)
        for tl in self._tiles:
            assert tl.state is not None
            weight = tl.tile.tile.weight
            if dm is None:
                weight.data.copy_(tl.target)
                _set_alpha(tl.tile, 1.0)
                continue
            if t == 0.0:
                dm.programmed_into(tl.state, weight.data, work)
            else:
                dm.read_into(tl.state, t, self._gen(tl, self.chip, "read", t), weight.data, work)
            alpha = 1.0
            if self.compensate_drift:
                alpha = tl.baseline / self._mean_abs(weight)
            _set_alpha(tl.tile, alpha)
        self._remember_versions()
        self.t = t
        return self

    def at(self, chip: int, t: float) -> ChipProgrammer:
        """Program ``chip`` (if it is not the current one) and drift it to ``t``."""
        if self.chip != chip:
            self.program(chip)
        return self.drift(t)

    @torch.no_grad()
    def reset(self) -> ChipProgrammer:
        """Restore every tile's target weights and α = 1 (the model as converted).

        The last chip's state tensors are kept as scratch for the next ``program`` (no re-allocation);
        :meth:`release` frees them.
        """
        for tl in self._tiles:
            self._write(tl, tl.target)
            if tl.state is not None and tl.state.tensors:
                self._work.spare[tl.key] = tl.state
            tl.state = None
            _set_alpha(tl.tile, 1.0)
        self._remember_versions()
        self.chip = self.t = None
        return self

    def release(self) -> ChipProgrammer:
        """Free the scratch buffers and spare chip state kept between calls (they are re-made on demand)."""
        self._work.clear()
        return self

    @torch.no_grad()
    def retarget(self) -> ChipProgrammer:
        """Take the tiles' current weights as the new targets (after training the analog weights)."""
        for tl in self._tiles:
            tl.target = tl.tile.tile.weight.detach().clone()
            tl.state = None
            _set_alpha(tl.tile, 1.0)
        self._remember_versions()
        self.chip = self.t = None
        return self

    @contextmanager
    def seeded_forward(self, *parts: object) -> Iterator[None]:
        """Seed torch's global RNG (used by aihwkit's per-MVM output noise) for a reproducible forward."""
        with torch.random.fork_rng(devices=_cuda_devices(self._tiles)):
            torch.manual_seed(derive_seed(self.seed, self.chip, self.t, "forward", *parts))
            yield

    @property
    def tile_keys(self) -> list[str]:
        return [tl.key for tl in self._tiles]

    def weights(self) -> dict[str, Tensor]:
        """The tiles' current weights by tile key (copies)."""
        return {tl.key: tl.tile.tile.weight.detach().clone() for tl in self._tiles}

    def targets(self) -> dict[str, Tensor]:
        return {tl.key: tl.target for tl in self._tiles}

    # -- internals -------------------------------------------------------------------------------
    def _gen(self, tl: _Tile, chip: int, purpose: str, *extra: float) -> torch.Generator:
        return make_generator(derive_seed(self.seed, int(chip), tl.key, purpose, *extra), tl.target.device)

    def _mean_abs(self, weight: Tensor) -> float:
        """``float(weight.abs().mean().clamp_min(1e-12))`` without allocating."""
        scratch = self._work.get("abs", weight.shape, weight)
        return float(torch.abs(weight.detach(), out=scratch).mean().clamp_min(1e-12))

    @staticmethod
    def _write(tl: _Tile, w: Tensor) -> None:
        tl.tile.tile.weight.data.copy_(w)

    def _remember_versions(self) -> None:
        for tl in self._tiles:
            weight = tl.tile.tile.weight
            tl.version = (weight.data_ptr(), weight._version)

    def _check_unchanged(self) -> None:
        for tl in self._tiles:
            weight = tl.tile.tile.weight
            if (weight.data_ptr(), weight._version) != tl.version:
                raise RuntimeError(
                    f"analog weights of tile {tl.key} changed since they were snapshotted (training, "
                    "set_weights or load_state_dict?). Programming would discard that change: call "
                    "retarget() to program the new weights, or reset() to go back to the old targets."
                )


def _set_alpha(tile: TorchInferenceTile, alpha: float) -> None:
    tile.__dict__.pop("alpha", None)  # aihwkit's drift_weights may have replaced the buffer by an attribute
    if "alpha" in tile._buffers:
        tile._buffers["alpha"].fill_(alpha)
    else:
        tile.register_buffer("alpha", torch.full((1,), alpha, device=tile.tile.weight.device))


def _cuda_devices(tiles: Sequence[_Tile]) -> list[int]:
    return sorted({tl.target.device.index or 0 for tl in tiles if tl.target.device.type == "cuda"})
