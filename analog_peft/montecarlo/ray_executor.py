"""Ray executor of the chip Monte Carlo (``run_montecarlo(..., executor="ray")``, ``--executor ray``).

Each actor builds every method's deployment once and then evaluates one chip per call; the driver keeps one
chip in flight per actor and hands the next pending chip to whichever actor finishes (so a slow node does
not hold back the others), and the driver alone writes the run directory (resume works as for a local run).

* **Resources**: every actor reserves ``ACTOR_CPUS`` (= ``EVAL_THREADS``, 1) CPU and evaluates on that many
  torch threads (set inside the actor: Ray does not limit torch's threads itself), so the rows are the same
  bits as in-process. By default there is one actor per available CPU of the cluster; ``actors`` caps it.
* **Faults**: actors are restartable (``MAX_RESTARTS``) and their calls retried (``max_task_retries``): when a
  worker process dies mid-chip, Ray restarts the actor (which rebuilds its deployments) and reruns the chip
  from its seed, giving the same rows. The driver holds one object ref per chip and yields it once, so no
  chip is duplicated. When the retries run out the error is raised; finished chips stay and a rerun resumes.
  Errors raised by the evaluation itself (e.g. non-finite logits) are not retried.
* **Cluster**: ``ray.init()`` is called when Ray is not initialised yet: it joins ``$RAY_ADDRESS`` if set
  (``ray://HEAD:10001`` or ``HEAD:6379``), else starts a local cluster. The package must be installed on
  every node.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from analog_peft.montecarlo.engine import EVAL_THREADS, ChipResult, MonteCarloConfig, _Worker

#: CPUs reserved by one actor: the torch threads it evaluates on
ACTOR_CPUS = EVAL_THREADS
#: restarts of a dead actor, and retries of its calls
MAX_RESTARTS = 3
#: test hook ``"CHIP:MARKER_FILE"``: an actor that has just evaluated chip CHIP exits (``os._exit``) before
#: returning it, unless MARKER_FILE exists (it writes its pid there first), i.e. once per marker
CRASH_ONCE_ENV = "ANALOG_PEFT_RAY_CRASH_ONCE"
INSTALL_HINT = "executor='ray' needs Ray: pip install 'analog_peft[ray]' (or pip install ray==2.60.0)"

__all__ = ["ACTOR_CPUS", "ChipActor", "RayMissing", "execute_ray", "require_ray"]


class RayMissing(ImportError):
    """``executor="ray"`` without Ray installed (the message names the install command)."""


def require_ray() -> Any:
    """The ``ray`` module, or :class:`RayMissing` naming the install command."""
    try:
        import ray
    except ImportError as err:
        raise RayMissing(INSTALL_HINT) from err
    return ray


class ChipActor:
    """One Ray actor's work: the deployments of ``config_dict``, built once, evaluated chip by chip."""

    def __init__(self, config_dict: dict[str, Any], crash_once: str = "") -> None:
        self.worker = _Worker(MonteCarloConfig.from_dict(config_dict), EVAL_THREADS)
        self.crash_once = crash_once

    def chip(self, chip: int) -> tuple[int, ChipResult]:
        """Every method's rows and per-example arrays on chip ``chip``."""
        result = self.worker.chip_result(chip)
        _maybe_crash(self.crash_once, chip)
        return chip, result

    def threads(self) -> dict[str, Any]:
        """Torch's thread count, the process id and ``OMP_NUM_THREADS`` of this actor (for checks)."""
        return {"torch": torch.get_num_threads(), "pid": os.getpid(), "omp": os.environ.get("OMP_NUM_THREADS")}


def _maybe_crash(spec: str, chip: int) -> None:
    if not spec:
        return
    target, marker = spec.split(":", 1)
    if int(target) == chip and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)


def remote_actor_class(ray: Any) -> Any:
    """:class:`ChipActor` as a Ray actor class (``ACTOR_CPUS`` CPUs, restartable, calls retried)."""
    return ray.remote(num_cpus=ACTOR_CPUS, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)(ChipActor)


def actor_count(ray: Any, n_chips: int, actors: int | None) -> int:
    """``actors``, else one per available CPU of the cluster (at least 1); never more than the chips."""
    if actors is None:
        actors = max(1, int(ray.available_resources().get("CPU", 0)) // ACTOR_CPUS)
    return max(1, min(actors, n_chips))


def execute_ray(
    config: MonteCarloConfig, chips: Sequence[int], actors: int | None = None
) -> Iterator[tuple[int, ChipResult]]:
    """Evaluate ``chips`` on Ray actors; yield ``(chip, (rows, arrays))`` once per chip, as they finish."""
    ray = require_ray()
    if not chips:
        return
    if not ray.is_initialized():
        ray.init()  # joins $RAY_ADDRESS when set, else starts a local cluster
    cls = remote_actor_class(ray)
    crash = os.environ.get(CRASH_ONCE_ENV, "")
    pool = [cls.remote(config.to_dict(), crash) for _ in range(actor_count(ray, len(chips), actors))]
    queue = deque(chips)
    in_flight = {pool[i].chip.remote(queue.popleft()): pool[i] for i in range(min(len(pool), len(queue)))}
    try:
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ref)
            result = ray.get(ref)
            if queue:
                in_flight[actor.chip.remote(queue.popleft())] = actor
            yield result
    finally:
        for actor in pool:
            ray.kill(actor)
