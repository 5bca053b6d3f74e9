"""Run every benchmark in turn (one heavy process at a time) and write ``benchmarks/results/*.json``.

    python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITES: list[tuple[str, list[str]]] = [
    ("bench_programming.py", ["--layers", "1", "--repeats", "3", "--times", "1,86400,31536000"]),
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, figures meaningless)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    for script, opts in QUICK if args.quick else SUITES:
        print(f"\n## {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *opts, "--device", args.device], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
