"""Training run directories after an interruption: byte-identical adapters and each event logged once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from analog_peft.training import TrainConfig, read_log, train
from analog_peft.training import loop as training_loop


class Killed(Exception):
    """Stands for a SIGKILL: nothing after it runs (the loop only checkpoints on KeyboardInterrupt)."""


def _config(model: str, out: Path, **kw) -> TrainConfig:
    return TrainConfig(
        model=model, task="sst2", method="grasp", method_options={"k": 4}, train_examples=24, eval_examples=8,
        batch_size=8, max_length=16, epochs=2, lr=2e-2, eval_every=2, save_every=1, log_every=1,
        progress=False, num_threads=1, out_dir=str(out), **kw,
    )


def _files(adapter_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(adapter_dir.iterdir())}


def _events(run: Path, event: str) -> list[int]:
    return [e["step"] for e in read_log(run / "log.jsonl") if e["event"] == event]


def test_killed_after_an_eval_then_resumed_saves_the_same_bytes_and_logs_each_eval_once(
    tmp_path, tiny_bert, monkeypatch
):
    full = train(_config(tiny_bert, tmp_path / "full"))
    assert full.steps == 6 and not full.interrupted

    real_save = training_loop.save_trainer_state

    def dies_at_step_2(run_dir, adapted, optimizer, scheduler, state):
        if state["step"] == 2:  # after step 2's eval logged and adapter/best saved, before its checkpoint
            raise Killed
        real_save(run_dir, adapted, optimizer, scheduler, state)

    part = tmp_path / "part"
    monkeypatch.setattr(training_loop, "save_trainer_state", dies_at_step_2)
    with pytest.raises(Killed):
        train(_config(tiny_bert, part))
    best_before = _files(part / "adapter" / "best")
    assert _events(part, "eval") == [2]

    monkeypatch.setattr(training_loop, "save_trainer_state", real_save)
    resumed = train(_config(tiny_bert, part))  # resumes from step 1: step 2 and its eval are redone
    assert resumed.steps == 6 and resumed.best_metric == full.best_metric
    assert _files(part / "adapter" / "best") == best_before == _files(tmp_path / "full" / "adapter" / "best")
    assert _files(part / "adapter" / "last") == _files(tmp_path / "full" / "adapter" / "last")
    assert _events(part, "eval") == _events(tmp_path / "full", "eval") == [2, 3, 4, 6]
    train_steps = _events(part, "train")
    assert train_steps == _events(tmp_path / "full", "train") and max(Counter(train_steps).values()) == 1
    assert [e["event"] for e in read_log(part / "log.jsonl")].count("resume") == 1


def test_saving_an_adapter_twice_gives_the_same_bytes(tmp_path, tiny_bert):
    from analog_peft.methods import GraspConfig, attach
    from analog_peft.models import load_classifier
    from analog_peft.training.checkpoint import save_adapter

    adapted = attach(load_classifier(tiny_bert, num_labels=2, seed=0), GraspConfig(k=4))
    saved = []
    for i in range(8):  # through training's atomic save, and the public save_adapter
        save_adapter(adapted, tmp_path / f"a{i}")
        adapted.save_adapter(tmp_path / f"b{i}")
        saved += [_files(tmp_path / f"a{i}"), _files(tmp_path / f"b{i}")]
    assert all(s == saved[0] for s in saved)


def test_a_log_line_cut_by_a_kill_is_dropped_on_resume(tmp_path):
    from analog_peft.training.runlog import JsonlLogger, drop_after

    log = JsonlLogger(tmp_path / "log.jsonl")
    for step in (1, 2, 3):
        log.log("train", step=step)
    with log.path.open("a") as f:
        f.write('{"event": "eval", "st')  # killed mid-line
    assert drop_after(log.path, 2) == 2
    assert [(e["event"], e["step"]) for e in read_log(log.path)] == [("train", 1), ("train", 2)]
