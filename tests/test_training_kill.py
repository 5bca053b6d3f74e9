"""Interrupt a real training process with SIGKILL mid-epoch, resume it, and compare with an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from analog_peft.training import TrainConfig, read_log, train
from analog_peft.training.checkpoint import STATE_DIR, has_trainer_state, read_state

pytestmark = pytest.mark.slow


def _config(model: str, out: Path) -> TrainConfig:
    return TrainConfig(
        model=model, task="sst2", method="stochgrasp", method_options={"k": 4, "sigma_target": 0.02},
        noise={"mode": "device", "device_model": {"name": "gaussian", "eta": 0.01}},
        train_examples=200, eval_examples=8, batch_size=4, max_length=16, epochs=1, lr=2e-2,
        save_every=1, log_every=10, progress=False, num_threads=1, out_dir=str(out),
    )


def test_kill_9_mid_epoch_then_resume_equals_uninterrupted(tmp_path, tiny_bert):
    full = train(_config(tiny_bert, tmp_path / "full"))
    assert full.steps == 50 and not full.interrupted

    part = tmp_path / "part"
    part.mkdir()
    toml = tmp_path / "part.toml"
    _config(tiny_bert, part).to_toml(toml)
    proc = subprocess.Popen([sys.executable, "-m", "analog_peft.cli", "train", "--config", str(toml)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": "0"})
    killed_at = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        state = part / STATE_DIR / "state.json"
        try:
            step = json.loads(state.read_text())["step"] if state.is_file() else 0
        except (json.JSONDecodeError, OSError):
            step = 0
        if step >= 3:
            os.kill(proc.pid, signal.SIGKILL)
            killed_at = step
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_at is not None, f"training ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read()}"
    assert proc.returncode == -signal.SIGKILL
    assert not (part / "summary.json").exists()  # really interrupted mid-epoch
    assert has_trainer_state(part) and 3 <= read_state(part)["step"] < 50

    resumed = train(_config(tiny_bert, part))
    assert resumed.steps == 50 and not resumed.interrupted
    a = load_file(str(tmp_path / "full" / "adapter" / "last" / "adapter.safetensors"))
    b = load_file(str(part / "adapter" / "last" / "adapter.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.best_metric == full.best_metric
    assert [e["event"] for e in read_log(part / "log.jsonl")].count("resume") == 1


def test_a_kill_between_the_checkpoint_renames_is_recovered(tmp_path):
    """``trainer_state`` missing but a complete ``.tmp`` (or only ``.old``) left: the newest complete state wins."""
    run = tmp_path / "run"
    (run / (STATE_DIR + ".tmp")).mkdir(parents=True)
    (run / (STATE_DIR + ".tmp") / "state.json").write_text('{"step": 7}')
    (run / (STATE_DIR + ".old")).mkdir()
    (run / (STATE_DIR + ".old") / "state.json").write_text('{"step": 6}')
    assert has_trainer_state(run) and read_state(run)["step"] == 7
    run2 = tmp_path / "run2"
    (run2 / (STATE_DIR + ".tmp")).mkdir(parents=True)  # half-written: no state.json yet
    (run2 / (STATE_DIR + ".old")).mkdir()
    (run2 / (STATE_DIR + ".old") / "state.json").write_text('{"step": 6}')
    assert has_trainer_state(run2) and read_state(run2)["step"] == 6
