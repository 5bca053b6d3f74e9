"""Seeded chips: program a converted model as chip ``k`` with a device model, drift it to time ``t``, reset.

``ChipProgrammer(model, "pcm", seed=0)`` snapshots every analog tile's target weights once. Then
``program(k)`` draws chip ``k``'s programming noise and drift parameters, and ``drift(t)`` sets the tiles
to chip ``k``'s weights ``t`` seconds after programming (drift + accumulated read noise) with global drift
compensation. Every draw comes from a generator seeded by ``(seed, chip, tile, purpose[, t])``, so chip
``k`` at time ``t`` is bit-identical in any order, in a fresh process, on any worker, and independent of
which other chips or times were evaluated. ``reset()`` restores the target weights without reloading.

Memory: a chip's per-device draws (for PCM: programmed conductances and drift exponents of both devices
of a pair and their read-noise amplitudes, 6 floats per weight) are kept between ``drift`` calls by default. With ``keep_state=False``
they are re-drawn from the chip's seed at every ``drift(t)`` (bit-identical, one tile at a time in a
tile-sized buffer): no per-chip state, at the cost of re-programming per time point. Programmers of models
with bit-identical targets (adapters deployed in the periphery of one base) share chips: ``copy_from(other)``
copies ``other``'s chip instead of drawing it again.

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
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
from aihwkit.simulator.tiles.inference_torch import TorchInferenceTile
from torch import Tensor, nn

import device_models
from analog_peft.architectures import layer_selector
from analog_peft.convert import analog_tiles
from device_models import DeviceModel, ProgrammedState, Workspace, make_generator, portable

_R = TypeVar("_R")


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
    spare: ProgrammedState | None = None  # a reset chip's buffers, overwritten by the next chip
    baseline: float = 1.0
    version: tuple[int, int] = (0, 0)
    exact: bool = False  # kept at its target (no device noise): a layer kept digital


class ChipProgrammer:
    """Program, drift and reset the analog tiles of one converted model.

    Args:
        model: a model converted with :func:`analog_peft.convert.convert`.
        device_model: a :mod:`device_models` name, dict or instance; ``None`` programs the exact targets.
        seed: the run seed; chip ``k`` draws from ``derive_seed(seed, k, ...)``.
        compensate_drift: apply global drift compensation (see module docstring).
        keep_state: keep each chip's draws between ``drift`` calls (fast); ``False`` re-draws them from
            the seed at every ``drift`` (no per-chip memory, same results).
        noisy_layers, digital_layers: where the noise hurts: the device model programs only the layers
            ``noisy_layers`` selects (empty: all) less those of ``digital_layers``; the others hold their
            exact targets, as if computed digitally. Entries: ``role:<r>``, ``block:<i>`` or module-name
            patterns (:func:`analog_peft.architectures.layer_selector`). A programmed layer draws what it
            draws on the full chip (seeds are per tile), so restricting the noise is a paired comparison.
    """

    def __init__(
        self,
        model: nn.Module,
        device_model: str | dict | DeviceModel | None = "pcm",
        seed: int = 0,
        compensate_drift: bool = True,
        keep_state: bool = True,
        noisy_layers: Sequence[str] = (),
        digital_layers: Sequence[str] = (),
    ) -> None:
        self.model = model
        self.keep_state = bool(keep_state)
        self.device_model = device_models.get(device_model) if device_model is not None else None
        self.seed = int(seed)
        self.compensate_drift = compensate_drift
        self.chip: int | None = None
        self.t: float | None = None
        tiles = analog_tiles(model)
        if not tiles:
            raise ValueError("model has no analog tiles: convert it with analog_peft.convert(...) first")
        noisy = noise_scope(model, [name for name, _ in tiles], list(noisy_layers), list(digital_layers))
        self._tiles: list[_Tile] = []
        counts: dict[str, int] = {}
        for layer, tile in tiles:
            idx = counts[layer] = counts.get(layer, -1) + 1
            weight = tile.tile.weight
            self._tiles.append(_Tile(f"{layer}#{idx}", tile, weight.detach().clone(), exact=noisy is not None
                                     and not noisy(layer)))
        self._works = [Workspace()]  # scratch buffers, one set per worker thread
        self._spare: dict[int, ProgrammedState] = {}  # keep_state=False: one tile's draws per workspace
        self._same_targets_as: tuple[ChipProgrammer, list[tuple[Tensor, int]]] | None = None  # copy_from check
        self._remember_versions()

    # -- public verbs ----------------------------------------------------------------------------
    @torch.no_grad()
    def program(self, chip: int) -> ChipProgrammer:
        """Program every tile as chip ``chip`` (weights right after programming, t = 0)."""
        self._check_unchanged()
        dm = self.device_model
        chip = int(chip)

        def one(tl: _Tile, work: Workspace) -> tuple[float, float]:
            weight = tl.tile.tile.weight
            if dm is None or tl.exact:
                tl.state = ProgrammedState(target=tl.target)
                weight.data.copy_(tl.target)
                return 1.0, 1.0
            state = self._draws(tl, chip, work)
            dm.programmed_into(state, weight.data, work)  # the chip at t = 0, written directly
            with _finite_or_named(weight, tl.key, chip, 0.0):  # α = baseline / mean|W(0)| = 1, exactly
                return mean_abs_weight(weight, work), 1.0

        for tl, (baseline, alpha) in self._each_tile(one):
            tl.baseline = baseline
            _set_alpha(tl.tile, alpha)
        self._remember_versions()
        self.chip, self.t = chip, 0.0
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
        dm, chip = self.device_model, self.chip
        if dm is not None and t != 0.0:
            dm.check_time(t)

        def one(tl: _Tile, work: Workspace) -> tuple[float, float]:
            weight = tl.tile.tile.weight
            if dm is None or tl.exact:
                weight.data.copy_(tl.target)
                return tl.baseline, 1.0
            state = tl.state if tl.state is not None else self._draws(tl, chip, work)
            if t == 0.0:
                dm.programmed_into(state, weight.data, work)
            else:
                dm.read_into(state, t, self._gen(tl, chip, "read", t), weight.data, work)
            if not self.compensate_drift:
                _check_finite(weight, tl.key, chip, t)
                return tl.baseline, 1.0
            with _finite_or_named(weight, tl.key, chip, t):  # |W| in the workspace: no allocation per chip × t
                return tl.baseline, drift_compensation(tl.baseline, weight, work)

        for tl, (_, alpha) in self._each_tile(one):
            _set_alpha(tl.tile, alpha)
        self._remember_versions()
        self.t = t
        return self

    def at(self, chip: int, t: float) -> ChipProgrammer:
        """Program ``chip`` (if it is not the current one) and drift it to ``t``."""
        if self.chip != chip:
            self.program(chip)
        return self.drift(t)

    def shares_chips_with(self, other: ChipProgrammer) -> bool:
        """Whether chip ``k`` at ``t`` is bit-identical here and on ``other``: same tiles, bit-identical
        targets, device model, seed and drift compensation (e.g. two adapters deployed in the periphery
        of the same base)."""
        dm = self.device_model.to_dict() if self.device_model is not None else None
        other_dm = other.device_model.to_dict() if other.device_model is not None else None
        if (self.seed, self.compensate_drift, dm) != (other.seed, other.compensate_drift, other_dm):
            return False
        if self.tile_keys != other.tile_keys or self.exact_keys != other.exact_keys:
            return False
        # comparing every target costs a pass over all weights: done once per pair of target tensors (they
        # are replaced, not changed, by retarget(); the version counter catches an in-place change)
        ident = [(tl.target, tl.target._version) for tl in (*self._tiles, *other._tiles)]
        seen = self._same_targets_as
        if seen is not None and seen[0] is other and all(
            a is b and va == vb for (a, va), (b, vb) in zip(seen[1], ident, strict=True)
        ):
            return True
        if not all(torch.equal(a.target, b.target) for a, b in zip(self._tiles, other._tiles, strict=True)):
            return False
        self._same_targets_as = (other, ident)
        return True

    @torch.no_grad()
    def copy_from(self, other: ChipProgrammer) -> ChipProgrammer:
        """Set the tiles to ``other``'s current chip and time by copying its weights and α instead of
        drawing them (refused unless :meth:`shares_chips_with`); bit-identical to ``at(chip, t)``."""
        if other.chip is None or other.t is None:
            raise RuntimeError("the chip to copy is not programmed: call other.program(chip) first")
        if not self.shares_chips_with(other):
            raise ValueError(
                "cannot copy chips between programmers with different tiles, targets, device model, seed or "
                "drift compensation (e.g. a fused adapter changes the targets): program this one with at(chip, t)"
            )
        self._check_unchanged()
        for mine, theirs in zip(self._tiles, other._tiles, strict=True):
            mine.tile.tile.weight.data.copy_(theirs.tile.tile.weight.data)
            _set_alpha(mine.tile, float(theirs.tile.alpha.reshape(-1)[0]))
            mine.baseline = theirs.baseline
            if mine.state is not None:  # draws of another chip: keep the buffers, forget the draws
                mine.spare, mine.state = mine.state, None
        self._remember_versions()
        self.chip, self.t = other.chip, other.t
        return self

    @torch.no_grad()
    def reset(self) -> ChipProgrammer:
        """Restore every tile's target weights and α = 1 (the model as converted).

        The chip's draws are forgotten, their buffers kept for the next ``program`` (re-allocating and
        page-faulting them per chip cost ~20 % of programming at BERT-base size); ``release()`` frees them.
        """
        for tl in self._tiles:
            self._write(tl, tl.target)
            tl.spare, tl.state = tl.state or tl.spare, None
            _set_alpha(tl.tile, 1.0)
        self._remember_versions()
        self.chip = self.t = None
        return self

    def release(self) -> ChipProgrammer:
        """Free the buffers kept between calls: scratch space, and a reset chip's draws (re-made on demand)."""
        for work in self._works:
            work.clear()
        self._spare.clear()
        for tl in self._tiles:
            tl.spare = None
        return self

    @torch.no_grad()
    def retarget(self, changed_only: bool = False) -> ChipProgrammer:
        """Take the tiles' current weights as the new targets (after training the analog weights).

        ``changed_only``: only the tiles written since the last snapshot (cheap when none was: training with
        chips in the loop calls it before every step, and only methods that train tile weights write them).
        """
        for tl in self._tiles:
            weight = tl.tile.tile.weight
            if changed_only and (weight.data_ptr(), weight._version) == tl.version:
                continue
            tl.target = tl.tile.tile.weight.detach().clone()
            tl.state = tl.spare = None
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

    @property
    def exact_keys(self) -> list[str]:
        """Tiles held at their exact targets (``noisy`` excluded them: layers kept digital)."""
        return [tl.key for tl in self._tiles if tl.exact]

    def weights(self) -> dict[str, Tensor]:
        """The tiles' current weights by tile key (copies)."""
        return {tl.key: tl.tile.tile.weight.detach().clone() for tl in self._tiles}

    def targets(self) -> dict[str, Tensor]:
        return {tl.key: tl.target for tl in self._tiles}

    # -- internals -------------------------------------------------------------------------------
    def _draws(self, tl: _Tile, chip: int, work: Workspace) -> ProgrammedState:
        """Chip ``chip``'s programming draws for tile ``tl`` (kept in ``tl.state`` when ``keep_state``).

        The buffers of the previous draws are overwritten instead of re-allocated: the tile's own (a
        previous chip, kept or reset) or, without kept state, the last tile's in this workspace.
        """
        assert self.device_model is not None
        gen = self._gen(tl, chip, "program")
        if self.keep_state:
            reuse = tl.state if tl.state is not None else tl.spare
            tl.state, tl.spare = self.device_model.program_into(tl.target, gen, work, reuse), None
            return tl.state
        state = self.device_model.program_into(tl.target, gen, work, self._spare.get(id(work)))
        self._spare[id(work)] = state
        return state

    def _gen(self, tl: _Tile, chip: int, purpose: str, *extra: float) -> torch.Generator:
        return make_generator(derive_seed(self.seed, int(chip), tl.key, purpose, *extra), tl.target.device)

    def _each_tile(self, fn: Callable[[_Tile, Workspace], _R]) -> list[tuple[_Tile, _R]]:
        """``fn(tile, workspace)`` for every tile.

        On CPU with torch's ``n > 1`` threads, the tiles are shared out among ``n`` Python threads that
        each run torch on one thread (largest tile first): no op waits at a barrier for a descheduled
        thread (which dominated on a loaded machine), and chunks stay in cache. Every tile draws from its
        own generator with portable kernels (``device_models.portable``), so the result does not depend
        on the number of threads or on which thread took which tile.
        """
        threads = torch.get_num_threads()
        cpu = all(tl.target.device.type == "cpu" for tl in self._tiles)
        if self.device_model is None or not cpu or threads == 1:
            return [(tl, fn(tl, self._works[0])) for tl in self._tiles]
        while len(self._works) < threads:
            self._works.append(Workspace())
        queue = iter(sorted(self._tiles, key=lambda tl: -tl.target.numel()))  # largest first
        lock = threading.Lock()
        results: dict[int, _R] = {}

        def worker(work: Workspace) -> None:
            while True:
                with lock:
                    tl = next(queue, None)
                if tl is None:
                    return
                results[id(tl)] = fn(tl, work)

        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                for fut in [pool.submit(worker, self._works[i]) for i in range(threads)]:
                    fut.result()
        finally:
            torch.set_num_threads(threads)
        return [(tl, results[id(tl)]) for tl in self._tiles]

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


def noise_scope(model: nn.Module, layers: list[str], noisy_layers: list[str],
                digital_layers: list[str]) -> Callable[[str], bool] | None:
    """The layers ``noisy_layers`` less ``digital_layers`` select among ``layers`` (``None``: all); a pattern
    that selects no analog layer, or a selection that leaves none noisy, is refused in one line."""
    if not (noisy_layers or digital_layers):
        return None
    for what, patterns in (("noisy_layers", noisy_layers), ("digital_layers", digital_layers)):
        for pattern in patterns:
            if not any(map(layer_selector(model, [pattern], what), layers)):
                raise ValueError(f"{what}: {pattern!r} selects no analog layer (they are e.g. {layers[0]!r}); "
                                 "use role:<r>, block:<i> or a module-name pattern")
    noisy = layer_selector(model, noisy_layers, "noisy_layers") if noisy_layers else None
    digital = layer_selector(model, digital_layers, "digital_layers")

    def test(name: str) -> bool:
        return (noisy is None or noisy(name)) and not digital(name)

    if not any(map(test, layers)):
        raise ValueError("noisy_layers / digital_layers leave no analog layer noisy: every chip would be the digital model")
    return test


def mean_abs_weight(weight: Tensor, work: Workspace | None = None) -> float:
    """``mean |W|`` (floored at 1e-12) of float32 weights, exact and independent of ISA, threads and order."""
    return max(portable.mean_abs(weight, work), 1e-12)


def drift_compensation(w_prog_mean_abs: float, weight_t: Tensor, work: Workspace | None = None) -> float:
    """Global drift compensation ``α(t) = mean|W_prog| / mean|W(t)|`` (module docstring): the one
    definition, used by the chips and by StochGRASP's device-derived σ targets."""
    return w_prog_mean_abs / mean_abs_weight(weight_t, work)


@contextmanager
def _finite_or_named(weight: Tensor, key: str, chip: int, t: float) -> Iterator[None]:
    """Re-raise the exact reductions' refusal of non-finite weights with the tile and chip named."""
    try:
        yield
    except ValueError:
        _check_finite(weight, key, chip, t)
        raise


class NonFiniteChipError(FloatingPointError):
    """A programmed or drifted tile holds inf or NaN weights (device-model parameters out of range)."""


def _check_finite(weight: Tensor, key: str, chip: int, t: float) -> None:
    if not bool(torch.isfinite(weight).all()):
        bad = int((~torch.isfinite(weight)).sum())
        raise NonFiniteChipError(
            f"chip {chip} at t = {t:g} s: tile {key} has {bad} non-finite weights (inf/NaN) after "
            "programming: the device-model parameters are out of range (e.g. a huge noise scale)"
        )


def _set_alpha(tile: TorchInferenceTile, alpha: float) -> None:
    tile.__dict__.pop("alpha", None)  # aihwkit's drift_weights may have replaced the buffer by an attribute
    if "alpha" in tile._buffers:
        tile._buffers["alpha"].fill_(alpha)
    else:
        tile.register_buffer("alpha", torch.full((1,), alpha, device=tile.tile.weight.device))


def _cuda_devices(tiles: Sequence[_Tile]) -> list[int]:
    return sorted({tl.target.device.index or 0 for tl in tiles if tl.target.device.type == "cuda"})
