"""Run-directory files: adapter checkpoints and resumable trainer state (calibration: :mod:`analog_peft.calibration`).

``trainer_state/`` holds ``adapter/`` (the adapter's own safetensors + JSON), ``optimizer.pt`` and
``scheduler.pt`` (plain tensor/number state dicts, loaded back with ``torch.load(weights_only=True)``),
``rng.safetensors`` (torch RNG states) and ``state.json`` (step, epoch, batch index, best metric, wall time).
It is written to a temporary folder and renamed, so an interruption never leaves a half-written state.

Saved adapters are byte-reproducible (``analog_peft.methods.io.canonical_safetensors``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE_DIR = "trainer_state"


def save_adapter(adapted: Any, directory: Path) -> None:
    """Write the adapter (``save_adapter``, byte-reproducible) atomically into ``directory``."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    adapted.save_adapter(tmp)
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def save_trainer_state(run_dir: Path, adapted: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> None:
    final = run_dir / STATE_DIR
    tmp = run_dir / (STATE_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    adapted.save_adapter(tmp / "adapter")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    torch.save(sched, tmp / "scheduler.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
    old = run_dir / (STATE_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def has_trainer_state(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a resumable state (finishing a swap a kill interrupted, see below)."""
    recover_trainer_state(run_dir)
    return (run_dir / STATE_DIR / "state.json").is_file()


def recover_trainer_state(run_dir: Path) -> None:
    """Complete :func:`save_trainer_state`'s rename swap if a kill landed between its two renames.

    ``.tmp`` is renamed only once fully written (``state.json`` is its last file), so a ``.tmp`` with
    ``state.json`` is the newest complete state; otherwise ``.old`` (the previous state) is put back.
    """
    final, tmp, old = (run_dir / (STATE_DIR + s) for s in ("", ".tmp", ".old"))
    if (final / "state.json").is_file():
        return
    for candidate in (tmp, old):
        if (candidate / "state.json").is_file():
            shutil.rmtree(final, ignore_errors=True)
            candidate.rename(final)
            return


def read_state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / STATE_DIR / "state.json").read_text())


def restore_optimizer(run_dir: Path, optimizer: Any, scheduler: Any) -> None:
    """Load optimiser/scheduler state and torch RNG states saved by :func:`save_trainer_state`."""
    d = run_dir / STATE_DIR
    optimizer.load_state_dict(torch.load(d / "optimizer.pt", weights_only=True))
    sched = torch.load(d / "scheduler.pt", weights_only=True)
    scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    rng = load_file(str(d / "rng.safetensors"))
    torch.set_rng_state(rng["cpu"])
    cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
