"""Ray scaling: the same chip Monte Carlo on 1 vs 2 Ray actors of a local cluster, and the same table.

A local Ray cluster (2 CPUs, loopback only, no dashboard, 100 MB object store) runs ``run_montecarlo(...,
executor="ray", workers=K)`` for K = 1 and 2 into fresh run directories, round-robin over ``--repeats``; an
in-process run is the reference, and every run's ``results.csv`` must be byte-identical to it (asserted).
Reported: the end-to-end wall time of each run (data, digital scores on the driver, actor start-up and the
chips) and of its chip phase alone (from the executor's start to its last chip: actor start-up included), and
the speed-ups 1 → 2 actors, and the actors' CPU seconds (so a shared machine's missing cores show: "cores used"
is actor CPU seconds per second of the chip phase). The MiniLM-L6 base on ``--n`` SST-2 dev sentences, PCM on the ``mapped`` preset.

    python benchmarks/bench_ray_scaling.py [--n 64] [--chips 8] [--times 1,86400,31536000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # the node address is 127.0.0.1

from benchmarks._common import table, write_result  # noqa: E402


def _config(n: int, chips: int, times: list[float]):
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig

    return MonteCarloConfig(methods=[MethodSpec("base")], base_model="minilm-l6", max_examples=n, n_chips=chips,
                            times=times, device_model="pcm", rpu="mapped", seed=0)


def _actor_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by the live Ray actor processes of this machine."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if "ChipActor" in " ".join(proc.info["cmdline"] or [proc.info["name"] or ""]):
                cpu = proc.cpu_times()
                total += cpu.user + cpu.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _timed_run(config, out: Path, workers: int | None, executor: str) -> dict[str, float]:
    """Wall time of one fresh run, of its chip phase (the executor's generator, start to last chip) and, for
    Ray, the actors' CPU seconds (start-up included), read after the last chip, before the actors end."""
    from analog_peft.montecarlo import engine

    execute, phase = engine._execute, {}

    def timed(config, chips, *args, **kwargs):
        start, left = time.perf_counter(), len(chips)
        for item in execute(config, chips, *args, **kwargs):
            left -= 1
            if left == 0:
                phase["chips_s"] = time.perf_counter() - start
                if executor == "ray":
                    phase["actor_cpu_s"] = _actor_cpu_seconds()
            yield item

    engine._execute = timed
    try:
        start = time.perf_counter()
        engine.run_montecarlo(config, out, workers=workers, executor=executor, progress=False)
        return {"total_s": time.perf_counter() - start, **phase}
    finally:
        engine._execute = execute


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="SST-2 dev sentences")
    ap.add_argument("--chips", type=int, default=8)
    ap.add_argument("--times", default="1,86400,31536000")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="accepted for run_all.py; only cpu is measured")
    ap.add_argument("--out", default="ray_scaling")
    args = ap.parse_args(argv)
    import ray

    config = _config(args.n, args.chips, [float(t) for t in args.times.split(",")])
    ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False, object_store_memory=100 * 2**20,
             configure_logging=False, log_to_driver=False)
    runs: dict[str, list[dict[str, float]]] = {"in_process": [], "ray_1": [], "ray_2": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs["in_process"].append(_timed_run(config, root / "local", 1, "process"))
        reference = (root / "local" / "results.csv").read_bytes()
        for rep in range(args.repeats):
            for actors in (1, 2):
                out = root / f"ray{actors}_{rep}"
                runs[f"ray_{actors}"].append(_timed_run(config, out, actors, "ray"))
                assert (out / "results.csv").read_bytes() == reference, f"{out}: not the in-process table"
    ray.shutdown()
    return _report(args, runs)


def _report(args: argparse.Namespace, runs: dict[str, list[dict[str, float]]]) -> int:
    keys = ("total_s", "chips_s", "actor_cpu_s")
    med = {k: {m: statistics.median(r[m] for r in v) for m in keys if m in v[0]} for k, v in runs.items()}
    speedup = {m: med["ray_1"][m] / med["ray_2"][m] for m in ("total_s", "chips_s")}
    # what the cores gave: actors' CPU seconds per second of the chip phase (2.0 = two free cores)
    cores_used = {k: med[k]["actor_cpu_s"] / med[k]["chips_s"] for k in ("ray_1", "ray_2")}
    rows = [[k, med[k]["total_s"], med[k]["chips_s"], med[k].get("actor_cpu_s", "-"), cores_used.get(k, "-")]
            for k in runs]
    print(table(["run", "total s", "chip phase s", "actors' CPU s", "cores used"], rows))
    print(f"speed-up 1 -> 2 actors: {speedup['chips_s']:.2f}x chip phase, {speedup['total_s']:.2f}x end to end; "
          f"actors' CPU s {med['ray_1']['actor_cpu_s']:.1f} vs {med['ray_2']['actor_cpu_s']:.1f}; "
          "results.csv byte-identical to the in-process run in every run")
    path = write_result(args.out, {
        "n": args.n, "chips": args.chips, "times": args.times, "repeats": args.repeats, "runs": runs,
        "median": med, "speedup_1_to_2_actors": speedup, "cores_used": cores_used, "tables_identical": True,
        "sched_autogroup": _autogroup(),
    })
    print(f"wrote {path}")
    return 0


def _autogroup() -> str:
    """Whether the kernel shares CPU per session (autogroup): then all of one session's processes together get
    one fair share of the cores, however many actors it runs."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
