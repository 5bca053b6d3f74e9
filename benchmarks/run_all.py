"""Run every benchmark in turn (one heavy process at a time) and write ``benchmarks/results/*.json``.

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: an AVX2 machine's kernels on an AVX-512 one: torch's AVX2 kernels and numba code for Haswell (AVX2, FMA unused)
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "",
        "NUMBA_CACHE_DIR": "/tmp/analog_peft_numba_haswell"}
#: a chip = programming + drifts at 1 s, 1 h, 1 d, 30 d, 1 y, 10 y (issue 17's measure)
SIX_TIMES = "1,3600,86400,2592000,31536000,315360000"
SUITES: list[tuple[str, list[str]]] = [
    ("bench_programming.py", ["--layers", "1", "--repeats", "3", "--times", SIX_TIMES]),
    ("bench_programming.py", ["--layers", "1", "--repeats", "3", "--times", SIX_TIMES, "--out",
                              "programming_avx2", "--isa", "avx2"]),
    ("bench_montecarlo.py", ["--n", "64", "--chips", "1", "--times", "1,86400,31536000", "--repeats", "3"]),
    ("bench_montecarlo.py", ["--n", "872", "--chips", "1", "--times", "1,86400,31536000", "--out", "montecarlo_n872",
                             "--repeats", "3"]),
    ("bench_adapter_forward.py", ["--n", "256", "--repeats", "5"]),
    ("bench_chip_stack.py", ["--n", "128", "--stack", "3", "--repeats", "3"]),
    ("bench_training.py", ["--steps", "5"]),
    ("bench_generation.py", ["--n", "100", "--max-new-tokens", "40", "--chips", "2", "--repeats", "3"]),
    ("bench_ray_scaling.py", ["--n", "64", "--chips", "8", "--times", "1,86400,31536000", "--repeats", "1"]),
]
QUICK: list[tuple[str, list[str]]] = [
    ("bench_programming.py", ["--layers", "1", "--repeats", "1", "--times", "1,86400"]),
    ("bench_montecarlo.py", ["--n", "16", "--chips", "1", "--times", "1,86400"]),
    ("bench_adapter_forward.py", ["--n", "16", "--repeats", "1", "--methods", "grasp"]),
    ("bench_chip_stack.py", ["--n", "16", "--stack", "2", "--repeats", "1", "--out", "chip_stack_quick"]),
    ("bench_training.py", ["--steps", "2"]),
    ("bench_generation.py", ["--n", "8", "--max-new-tokens", "8", "--chips", "1", "--repeats", "1",
                             "--out", "generation_quick"]),
    ("bench_ray_scaling.py", ["--n", "8", "--chips", "2", "--times", "1", "--repeats", "1", "--out", "ray_scaling_quick"]),
]


def _has_avx512() -> bool:
    import torch

    return torch.backends.cpu.get_cpu_capability().lower() == "avx512"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, figures meaningless)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    for script, opts in QUICK if args.quick else SUITES:
        env = dict(os.environ)
        if "--isa" in opts:  # run under another ISA's kernels (skipped where torch has no AVX-512 to step down from)
            i = opts.index("--isa")
            opts = opts[:i] + opts[i + 2 :]
            if not _has_avx512():
                print(f"\n## {script} {' '.join(opts)}: skipped (this CPU is already AVX2 or less)")
                continue
            env.update(AVX2)
        print(f"\n## {script} {' '.join(opts)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *opts, "--device", args.device], check=True, env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
