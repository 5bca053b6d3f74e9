"""Learning-rate schedules: linear warmup, then linear decay / cosine decay / constant."""

from __future__ import annotations

import math
from collections.abc import Callable


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at step ``s`` (``torch.optim.lr_scheduler.LambdaLR``)."""

    def fn(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(max(progress, 0.0), 1.0)
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn
