"""Input-range calibration of analog tiles (``standard`` preset), saved with a training run and restored with it.

Training on the ``standard`` preset sets every tile's input range from a few training batches and saves them in
the run directory (:data:`CALIBRATION`); :func:`analog_peft.training.load_trained` and
:func:`analog_peft.deploy.deploy` (adapters inside a run directory) restore them, so the model evaluated or
programmed as chips is the one that was trained.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

CALIBRATION = "analog_calibration.safetensors"
#: A training run directory holds this file (``adapter/best`` and ``adapter/last`` sit two levels below).
RUN_CONFIG = "train_config.toml"


def save_calibration(model: nn.Module, run_dir: Path) -> None:
    """Save the analog tiles' input ranges (set from training data) so the run can be rebuilt exactly."""
    from analog_peft.convert import analog_tiles

    ranges = {f"{name}#{i}": t.input_range.detach().cpu().clone()
              for i, (name, t) in enumerate(analog_tiles(model)) if t.input_range is not None}
    if ranges:
        save_file(ranges, str(Path(run_dir) / CALIBRATION))


@torch.no_grad()
def load_calibration(model: nn.Module, run_dir: Path) -> int:
    """Restore the input ranges saved in ``run_dir`` onto the matching tiles; returns how many were set."""
    path = Path(run_dir) / CALIBRATION
    if not path.is_file():
        return 0
    from analog_peft.convert import analog_tiles

    saved = load_file(str(path))
    restored = 0
    for i, (name, t) in enumerate(analog_tiles(model)):
        key = f"{name}#{i}"
        if t.input_range is not None and key in saved:
            t.input_range.copy_(saved[key].to(t.input_range))
            t.input_range_update_idx.fill_(t.rpu_config.pre_post.input_range.init_from_data)
            restored += 1
    return restored


def run_dir_of(adapter_dir: str | Path) -> Path | None:
    """The training run directory an adapter folder belongs to (itself, or up to two levels up), if any."""
    folder = Path(adapter_dir)
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / RUN_CONFIG).is_file():
            return candidate
    return None
