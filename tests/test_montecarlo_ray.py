"""Ray executor on a real local Ray cluster (a head and its worker processes on this machine, loopback only):
the same table as in-process, a worker killed mid-chip, the driver killed and resumed, threads per actor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

# before ray is imported: no usage stats, and the node address is 127.0.0.1 (Ray otherwise resolves
# "127.0.0.1" to the machine's routable address and listens there); single-node clusters only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from analog_peft.cli import main  # noqa: E402
from analog_peft.methods import GraspConfig, attach  # noqa: E402
from analog_peft.models import load_classifier  # noqa: E402
from analog_peft.montecarlo import engine  # noqa: E402
from analog_peft.montecarlo import ray_executor as rx  # noqa: E402
from analog_peft.montecarlo.engine import EVAL_THREADS, MethodSpec, MonteCarloConfig, run_montecarlo  # noqa: E402

try:
    import ray
except ImportError:  # the cluster tests skip; the missing-Ray error is still checked
    ray = None

N_CHIPS = 4
#: seconds before a wait counts as a hang: generous, since on a loaded 2-core machine an actor takes minutes to start
HANG_GUARD_S = 900
GAUSS = {"name": "gaussian", "params": {"eta": 0.02}}


@pytest.fixture(scope="module")
def cluster() -> dict:
    """One local Ray cluster for the module: a head with 2 CPUs (2 worker processes), 100 MB object store."""
    if ray is None:
        pytest.skip("ray is not installed: pip install 'analog_peft[ray]' (it is in requirements/lock.txt)")
    ctx = ray.init(num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
                   object_store_memory=100 * 2**20, configure_logging=False)
    assert ctx.address_info["node_ip_address"] == "127.0.0.1"
    yield ctx.address_info
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tiny_bert, tmp_path_factory) -> MonteCarloConfig:
    """The bare tiny BERT and a GRASP adapter on it, 16 sentences, 4 chips × 2 times, Gaussian noise."""
    adapted = attach(load_classifier(tiny_bert, num_labels=2, seed=0), GraspConfig(k=4))
    with torch.no_grad():
        for p in adapted.adapter_parameters():
            p.add_(0.05 * torch.randn_like(p))
    adapter = adapted.save_adapter(tmp_path_factory.mktemp("ray-adapters") / "grasp")
    return MonteCarloConfig(methods=[MethodSpec("base"), MethodSpec("grasp", str(adapter))], base_model=tiny_bert,
                            max_examples=16, batch_size=8, n_chips=N_CHIPS, times=[1.0, 86400.0], device_model=GAUSS,
                            rpu="ideal", seed=3)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory) -> Path:
    """The in-process run."""
    out = tmp_path_factory.mktemp("ray-mc") / "local"
    run_montecarlo(config, out, workers=1, progress=False)
    return out


def assert_same_run(run: Path, reference: Path) -> None:
    """Byte-identical ``results.csv`` and chip CSVs; the same arrays in every chip's ``.npz`` (the zip
    members carry their write time, so the ``.npz`` bytes differ)."""
    assert (run / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    names = sorted(p.name for p in (reference / "chips").iterdir())
    assert sorted(p.name for p in (run / "chips").iterdir()) == names  # no temporary files left
    assert len(names) == 2 * N_CHIPS
    for name in names:
        if name.endswith(".csv"):
            assert (run / "chips" / name).read_bytes() == (reference / "chips" / name).read_bytes(), name
            continue
        with np.load(run / "chips" / name) as got, np.load(reference / "chips" / name) as want:
            assert sorted(got.files) == sorted(want.files), name
            for key in want.files:
                assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), (name, key)


def wait_for_free_cpus(n: int) -> None:
    """Block until ``n`` CPUs of the cluster are free (killed actors release theirs asynchronously)."""
    deadline = time.time() + HANG_GUARD_S
    while time.time() < deadline and ray.available_resources().get("CPU", 0) < n:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) >= n, f"{n} CPUs not free after {HANG_GUARD_S} s"


def test_ray_table_is_identical_to_the_in_process_run(cluster, config, reference, tmp_path):
    run_montecarlo(config, tmp_path / "ray", executor="ray", progress=False)
    assert_same_run(tmp_path / "ray", reference)


def test_a_worker_killed_mid_chip_is_restarted_and_nothing_is_duplicated(
    cluster, config, reference, tmp_path, monkeypatch
):
    marker = tmp_path / "crashed.pid"
    monkeypatch.setenv(rx.CRASH_ONCE_ENV, f"2:{marker}")  # the actor exits after evaluating chip 2, once
    written: list[str] = []
    write_csv = engine._write_csv
    monkeypatch.setattr(engine, "_write_csv", lambda path, rows: (written.append(path.name), write_csv(path, rows)))
    run_montecarlo(config, tmp_path / "ray", executor="ray", progress=False)
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the worker process that evaluated chip 2 first is gone
    chip_files = sorted(name for name in written if name.startswith("chip_"))
    assert chip_files == [f"chip_{k:05d}.csv" for k in range(N_CHIPS)]  # each chip written once
    assert_same_run(tmp_path / "ray", reference)


DRIVER = """
import sys, json
from analog_peft.montecarlo import engine
write_csv, done = engine._write_csv, []
def write_then_hang(path, rows):  # the driver stops (as if hung) after writing 2 chips; the test kills it
    write_csv(path, rows)
    done.append(path.name)
    if sum(name.startswith("chip_") for name in done) >= 2:
        import time; time.sleep(600)
engine._write_csv = write_then_hang
config = engine.MonteCarloConfig.from_dict(json.loads(sys.argv[1]))
engine.run_montecarlo(config, sys.argv[2], executor="ray", progress=False)
"""


def test_a_killed_driver_resumes_to_the_same_table(cluster, config, reference, tmp_path):
    run = tmp_path / "ray"
    env = {**os.environ, "RAY_ADDRESS": cluster["address"]}  # the subprocess joins the module's cluster
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(config.to_dict()), str(run)], env=env)
    deadline = time.time() + HANG_GUARD_S
    while time.time() < deadline and len(list((run / "chips").glob("chip_*.csv"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the driver should still be running (hung after its second chip)"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for_free_cpus(2)  # the dead driver's actors hold the CPUs until Ray notices the job is gone
    chips = sorted(p.name for p in (run / "chips").glob("chip_*"))
    assert len(chips) == 4 and not (run / "results.csv").exists()  # 2 chips (csv + npz), the run unfinished
    run_montecarlo(config, run, workers=1, executor="ray", progress=False)  # the 2 chips left, on one actor
    assert_same_run(run, reference)


def test_actors_reserve_one_cpu_and_evaluate_on_eval_threads(cluster, config):
    wait_for_free_cpus(2)  # the earlier tests' actors are gone
    # OMP_NUM_THREADS=2 in the actor's environment: torch would use 2 threads unless the actor limits them
    cls = rx.remote_actor_class(ray).options(runtime_env={"env_vars": {"OMP_NUM_THREADS": "2"}})
    actor = cls.remote(config.to_dict())
    try:
        info = ray.get(actor.threads.remote(), timeout=HANG_GUARD_S)
        assert info["omp"] == "2" and info["torch"] == EVAL_THREADS == rx.ACTOR_CPUS
        deadline = time.time() + 30
        while time.time() < deadline and ray.available_resources().get("CPU", 0) != 2 - rx.ACTOR_CPUS:
            time.sleep(0.2)
        assert ray.available_resources().get("CPU", 0) == 2 - rx.ACTOR_CPUS
    finally:
        ray.kill(actor)
    assert rx.actor_count(ray, n_chips=10, actors=None) >= 1
    assert rx.actor_count(ray, n_chips=3, actors=8) == 3  # never more actors than chips


def test_executor_ray_without_ray_names_the_install_command(tiny_bert, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "mc"
    rc = main(["montecarlo", "--method", "base=", "--base", tiny_bert, "--max-examples", "8", "--chips", "1", "--times", "1s",
               "--device", "gaussian", "--rpu", "ideal", "--executor", "ray", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip install 'analog_peft[ray]'" in err[0], err
    assert not out.exists()  # refused before the run directory is made
