"""Where a figure or a table row was computed: CPU, vector ISA, torch, chip scheme."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from device_models import portable


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def platform_info(torch_threads: int) -> dict[str, Any]:
    """The chip scheme (chips are the same bits on any CPU) and what the forward pass ran on: the CPU, the
    vector ISA of torch's kernels and ``torch_threads``."""
    return {
        "chip_scheme": portable.SCHEME,
        "cpu": cpu_name(),
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch_threads,
    }
