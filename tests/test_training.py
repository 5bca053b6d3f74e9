"""Training API: config round-trip, errors before training, determinism, resume equality, CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from analog_peft.training import ConfigError, TrainConfig, load_trained, read_log, train
from analog_peft.training.cli import apply_overrides, parse_value

SMALL = {
    "model": "minilm-l6",
    "task": "sst2",
    "train_examples": 40,
    "eval_examples": 16,
    "batch_size": 8,
    "max_length": 32,
    "progress": False,
    "num_threads": 2,
    "log_every": 2,
}


def adapter(run: Path, which: str = "last") -> dict[str, torch.Tensor]:
    return load_file(str(run / "adapter" / which / "adapter.safetensors"))


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_config_toml_round_trip(tmp_path):
    config = TrainConfig(
        method="stochgrasp",
        method_options={"k": 8, "sigma_target": {"device_model": "pcm", "t": 86400.0}},
        noise={"mode": "device", "device_model": {"name": "gaussian", "eta": 0.01}, "t": 0.0},
        lr=3e-3,
        text_column="sentence",
        out_dir=str(tmp_path / "r"),
    )
    path = tmp_path / "c.toml"
    config.to_toml(path)
    back = TrainConfig.from_toml(path)
    assert back == config
    assert back.base == "ideal"  # auto with noise injection
    assert TrainConfig().base == "digital"


def test_cli_overrides_parse_toml_values():
    assert parse_value("3") == 3 and parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("pcm") == "pcm" and parse_value('{device = "pcm", t = 1.0}') == {"device": "pcm", "t": 1.0}
    data = apply_overrides({}, ["noise.mode=device", "method_options.k=32"])
    assert data == {"noise": {"mode": "device"}, "method_options": {"k": 32}}


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"method": "nope"}, "unknown method"),
        ({"method_options": {"k": 0}}, "method_options"),
        ({"noise": {"mode": "device"}}, "noise.device"),
        ({"noise": {"mode": "device", "device_model": "pcm"}, "rpu": "digital"}, "analog base"),
        ({"noise": {"mode": "aihwkit_modifier"}}, "eta"),
        ({"schedule": "step"}, "schedule"),
    ],
)
def test_invalid_config_raises(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**changes)


def test_unknown_field_in_toml(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('method = "grasp"\nlearning_rate = 0.1\n')
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_toml(path)


def _tiny_causal_lm(path: Path) -> Path:
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, architectures=["GPT2LMHeadModel"]).save_pretrained(path)
    return path


@pytest.mark.parametrize("case", ["missing_file", "label_column", "e2e_encoder", "sst2_causal", "unknown_task"])
def test_errors_before_training(tmp_path, case):
    out = tmp_path / "run"
    kw = {**SMALL, "out_dir": str(out)}
    if case == "missing_file":
        kw["data_dir"] = str(tmp_path / "empty")
        (tmp_path / "empty").mkdir()
        err, match = FileNotFoundError, "train"
    elif case == "label_column":
        kw["label_column"] = "polarity"
        err, match = ValueError, "polarity"
    elif case == "e2e_encoder":
        kw["task"] = "e2e"
        err, match = ConfigError, "causal LM"
    elif case == "sst2_causal":
        kw["model"] = str(_tiny_causal_lm(tmp_path / "gpt2"))
        err, match = ConfigError, "classification"
    else:
        kw["task"] = "mnli9"
        err, match = ConfigError, "Unknown task"
    with pytest.raises(err, match=match):
        train(TrainConfig(**kw))
    assert not (out / "log.jsonl").exists()  # nothing was trained or written


def test_resume_equals_uninterrupted_and_is_deterministic(tmp_path, tiny_bert):
    """StochGRASP with device noise in the loop: stop mid-epoch, resume, compare bit for bit."""
    kw = {
        **SMALL,
        "model": tiny_bert,
        "method": "stochgrasp",
        "method_options": {"k": 4, "sigma_target": 0.02},
        "noise": {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.01}},
        "train_examples": 24,  # 3 steps per epoch
        "eval_examples": 8,
        "max_length": 16,
        "epochs": 2,
        "lr": 2e-2,
    }
    full = train(TrainConfig(**kw, out_dir=str(tmp_path / "full")))
    assert full.steps == 6 and not full.interrupted
    stopped = train(TrainConfig(**kw, out_dir=str(tmp_path / "part"), stop_after_steps=2))
    assert stopped.interrupted and stopped.steps == 2
    assert (tmp_path / "part" / "trainer_state" / "optimizer.pt").is_file()
    resumed = train(TrainConfig(**kw, out_dir=str(tmp_path / "part")))
    assert resumed.steps == 6
    assert_same(adapter(tmp_path / "full"), adapter(tmp_path / "part"))
    assert_same(adapter(tmp_path / "full", "best"), adapter(tmp_path / "part", "best"))
    assert resumed.best_metric == full.best_metric
    events = [e["event"] for e in read_log(tmp_path / "part" / "log.jsonl")]
    assert events.count("resume") == 1 and events[-1] == "summary"
    # determinism: a second uninterrupted run is identical
    again = train(TrainConfig(**kw, out_dir=str(tmp_path / "again")))
    assert again.best_metric == full.best_metric
    assert_same(adapter(tmp_path / "full"), adapter(tmp_path / "again"))


def test_resume_refuses_changed_config(tmp_path, tiny_bert):
    kw = {**SMALL, "model": tiny_bert, "method": "head", "max_steps": 2, "out_dir": str(tmp_path / "r")}
    train(TrainConfig(**kw, stop_after_steps=1))
    with pytest.raises(ConfigError, match="lr"):
        train(TrainConfig(**kw, lr=0.5))


def test_modifier_noise_changes_training(tmp_path, tiny_bert):
    kw = {**SMALL, "model": tiny_bert, "method": "grasp", "method_options": {"k": 4}, "max_steps": 1, "rpu": "ideal", "lr": 5e-2,
          "eval_examples": 8, "max_length": 16}
    clean = train(TrainConfig(**kw, out_dir=str(tmp_path / "clean")))
    noisy = train(TrainConfig(**kw, noise={"mode": "aihwkit_modifier", "eta": 0.05}, out_dir=str(tmp_path / "n")))
    a, b = adapter(clean.out_dir), adapter(noisy.out_dir)
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_cli_train_and_load_trained(tmp_path, tiny_bert):
    from analog_peft.cli import main

    cfg = TrainConfig(**{**SMALL, "model": tiny_bert, "method": "grasp", "method_options": {"k": 4}, "rpu": "ideal"})
    path = tmp_path / "run.toml"
    cfg.to_toml(path)
    out = tmp_path / "cli"
    assert main(["train", "--config", str(path), "--max-steps", "2", "--out-dir", str(out), "--set", "seed=3"]) == 0
    for f in ("train_config.toml", "log.jsonl", "summary.json", "adapter/best/adapter_config.json",
              "adapter/last/adapter.safetensors", "trainer_state/state.json"):
        assert (out / f).exists(), f
    model, adapted, config = load_trained(out)
    assert config.seed == 3 and config.max_steps == 2
    from analog_peft.convert import analog_tiles

    assert analog_tiles(model)  # rebuilt on the recorded (ideal) analog base
    assert_same({k: v.detach() for k, v in adapted.adapter_tensors().items()}, adapter(out, "best"))


@pytest.mark.slow
def test_grasp_beats_head_only_on_sst2_subset(tmp_path):
    kw = {**SMALL, "train_examples": 512, "eval_examples": 200, "batch_size": 16, "epochs": 2, "lr": 1e-2}
    head = train(TrainConfig(**kw, method="head", out_dir=str(tmp_path / "head")))
    grasp = train(TrainConfig(**kw, method="grasp", out_dir=str(tmp_path / "grasp")))
    assert grasp.best_metric > 0.6
    assert grasp.best_metric > head.best_metric + 0.03


def test_any_glue_format_tsv_directory(tmp_path, tiny_bert):
    rows = "\n".join(f"{'good fun film' if i % 2 else 'dull boring mess'} {i}\t{i % 2}" for i in range(12))
    for split in ("train", "dev"):
        (tmp_path / f"{split}.tsv").write_text("sentence\tlabel\n" + rows + "\n")
    result = train(TrainConfig(**{**SMALL, "model": tiny_bert, "method": "head", "max_steps": 2,
                                  "data_dir": str(tmp_path), "out_dir": str(tmp_path / "run")}))
    assert result.summary["train_examples"] == 12 and result.summary["eval_examples"] == 12


def test_full_finetuning_with_chips_in_the_loop_trains_the_tile_weights(tmp_path, tiny_bert):
    """``method = "full"`` trains the analog weights themselves: each step programs a chip from the *updated*
    weights (it used to stop at step 2: the optimizer had changed the tiles after the chip's reset)."""
    kw = {**SMALL, "model": tiny_bert, "method": "full", "rpu": "ideal", "lr": 1e-3, "train_examples": 24,
          "eval_examples": 8,
          "max_length": 16, "epochs": 1, "noise": {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.01}}}
    result = train(TrainConfig(**kw, out_dir=str(tmp_path / "full")))
    assert result.steps == 3 and not result.interrupted
    trained = adapter(tmp_path / "full")
    query = next(k for k in trained if "attention.self.query" in k and k.endswith("weight"))
    _, adapted, _ = load_trained(tmp_path / "full", which="last")
    assert torch.equal(adapted.adapter_tensors()[query], trained[query])  # the run reloads with its weights
    clean = train(TrainConfig(**{**kw, "noise": {"mode": "none"}}, out_dir=str(tmp_path / "clean")))
    assert clean.steps == 3
    untrained = adapter(tmp_path / "clean")[query]
    assert not torch.equal(trained[query], untrained)  # the chips in the loop changed the updates


def test_deploy_restores_the_input_ranges_calibrated_in_training(tmp_path, tiny_bert):
    """A Monte Carlo on ``standard`` tiles evaluates the trained model: deploy() restores the run's calibration."""
    from analog_peft.convert import analog_tiles
    from analog_peft.deploy import deploy

    kw = {**SMALL, "model": tiny_bert, "method": "grasp", "method_options": {"k": 4}, "rpu": "standard",
          "train_examples": 16, "eval_examples": 8, "max_length": 16, "max_steps": 2}
    train(TrainConfig(**kw, out_dir=str(tmp_path / "run")))
    trained, _, _ = load_trained(tmp_path / "run")
    dep = deploy(tiny_bert, tmp_path / "run" / "adapter" / "best", rpu="standard")
    fresh = deploy(tiny_bert, None, rpu="standard")

    def ranges(model):
        return [float(t.input_range) for _, t in analog_tiles(model)]

    assert ranges(dep.model) == ranges(trained)
    assert ranges(fresh.model) != ranges(trained)  # calibration moved them: the check can fail


def test_the_conversion_travels_with_the_adapter_and_the_monte_carlo_reads_it(tmp_path, tiny_bert):
    """Training on ``standard`` records it (run dir and adapter); deploy and the Monte Carlo rebuild it by default,
    refuse another preset, and record an allowed override."""
    import json
    import shutil

    from analog_peft.conversion_config import ConversionMismatch, load_conversion
    from analog_peft.deploy import deploy
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig

    kw = {**SMALL, "model": tiny_bert, "method": "grasp", "method_options": {"k": 4}, "rpu": "standard",
          "train_examples": 16, "eval_examples": 8, "max_length": 16, "max_steps": 1}
    train(TrainConfig(**kw, out_dir=str(tmp_path / "run")))
    best = tmp_path / "run" / "adapter" / "best"
    for where in (tmp_path / "run", best):
        record = load_conversion(where)
        assert record.preset == "standard" and record.modules == "blocks" and record.pooling == "cls"
    assert deploy(tiny_bert, best).report.rpu["name"] == "standard"  # not the former silent default, mapped
    with pytest.raises(ConversionMismatch, match="trained on rpu .*standard.*allow-conversion-override"):
        deploy(tiny_bert, best, rpu="mapped")
    dep = deploy(tiny_bert, best, rpu="mapped", allow_override=True)
    assert dep.overridden and dep.report.rpu["name"] == "mapped"
    config = MonteCarloConfig(methods=[MethodSpec("grasp", str(best))], base_model=tiny_bert, device_model="gaussian")
    assert config.conversions()["grasp"] == {"rpu": {"name": "standard", "options": {}}, "recorded": "standard",
                                             "overridden": False}
    with pytest.raises(ConversionMismatch, match="method 'grasp'"):
        MonteCarloConfig(methods=config.methods, base_model=tiny_bert, device_model="gaussian", rpu="ideal").validate()
    allowed = MonteCarloConfig(methods=config.methods, base_model=tiny_bert, device_model="gaussian", rpu="ideal",
                               allow_conversion_override=True)
    assert allowed.conversions()["grasp"]["overridden"] is True
    # an adapter trained on another base names it in one line
    other = tmp_path / "other-bert"
    shutil.copytree(tiny_bert, other)
    with pytest.raises(ValueError, match=f"was trained on base .*pass --base {tiny_bert}"):
        deploy(str(other), best)
    (best / "conversion.json").write_text(json.dumps({"rpu": None, "colour": 1}))
    with pytest.raises(ValueError, match="not a conversion record"):
        deploy(tiny_bert, best)


def test_noise_is_a_typed_table_that_round_trips(tmp_path):
    from analog_peft.training.config import NoiseConfig

    cfg = TrainConfig(rpu="mapped", noise={"mode": "device", "device_model": {"name": "gaussian", "params": {"eta": 0.01}},
                                           "t": 86400.0})
    assert isinstance(cfg.noise, NoiseConfig) and cfg.noise.compensate_drift is True and cfg.base == "mapped"
    cfg.to_toml(tmp_path / "c.toml")
    assert TrainConfig.from_toml(tmp_path / "c.toml").noise == cfg.noise
    assert TrainConfig(noise={"mode": "device", "device_model": "pcm"}).base == "ideal"  # auto: noise needs tiles
    with pytest.raises(ConfigError, match=r"unknown noise option\(s\) \['sigma'\]"):
        TrainConfig(noise={"mode": "device", "device_model": "pcm", "sigma": 0.1})
    with pytest.raises(ConfigError, match="noise must be a table"):
        TrainConfig(noise="pcm")


def test_generation_is_a_typed_table():
    cfg = TrainConfig(task="e2e", model="minilm-l6", generation={"num_beams": 4})
    assert (cfg.generation.num_beams, cfg.generation.max_new_tokens, cfg.generation.batch_size) == (4, 64, 16)
    with pytest.raises(ConfigError, match=r"unknown generation option\(s\) \['beams'\]"):
        TrainConfig(generation={"beams": 4})
    with pytest.raises(ConfigError, match="generation.max_new_tokens must be a positive integer"):
        TrainConfig(generation={"max_new_tokens": 0})


def test_former_field_names_device_still_load() -> None:
    """``device`` meant a torch device in TrainConfig and a device model in ``noise`` / ``sigma_target``;
    they are ``torch_device`` / ``device_model`` now, and configs written before load under those names."""
    from analog_peft.methods import StochGraspConfig

    cfg = TrainConfig.from_dict({"device": "cpu", "noise": {"mode": "device", "device": "pcm", "t": 1.0}})
    assert cfg.torch_device == "cpu" and cfg.noise.device_model == "pcm"
    assert StochGraspConfig(sigma_target={"device": "pcm", "t": 1.0}).sigma_target["device_model"] == "pcm"
    with pytest.raises(ConfigError, match="both 'device'"):
        TrainConfig.from_dict({"device": "cpu", "torch_device": "cpu"})
