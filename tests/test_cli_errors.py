"""Every invalid input of the CLI ends with ONE line ``analog-peft: error: ...`` on stderr and exit status 2
(``--debug`` re-raises with the traceback). The CLI runs in-process: ``analog_peft.cli.main([...])``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from analog_peft import models
from analog_peft.cli import main
from analog_peft.methods import GraspConfig, attach
from analog_peft.models import ModelNotFoundError, load_classifier


def one_error_line(capsys, argv: list[str], *words: str) -> str:
    """Run the CLI; assert exit 2 and a single non-empty stderr line with every word in ``words``."""
    code = main(argv)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2, (code, lines)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("analog-peft: error:"), line
    for word in words:
        assert word in line, (word, line)
    return line


@pytest.fixture
def adapter(tiny_bert, tmp_path) -> Path:
    adapted = attach(load_classifier(tiny_bert, num_labels=2), GraspConfig(k=4))
    with torch.no_grad():
        for p in adapted.adapter_parameters():
            p.add_(0.05 * torch.randn_like(p))
    return adapted.save_adapter(tmp_path / "grasp")


def mc(tiny_bert: str, out: Path, *extra: str) -> list[str]:
    """A Monte Carlo command line on the tiny BERT: 8 sentences, 1 chip, 1 time, Gaussian noise on ideal tiles."""
    return ["montecarlo", "--base", tiny_bert, "--max-examples", "8", "--chips", "1", "--times", "1s",
            "--device", "gaussian", "--rpu", "ideal", "--out", str(out), *extra]


# -- convert ---------------------------------------------------------------------------------------------


def test_convert_missing_directory(capsys, tmp_path):
    missing = tmp_path / "missing" / "dir"
    one_error_line(capsys, ["convert", str(missing)], str(missing), "does not exist")


def test_convert_bad_regex_pattern(capsys, tiny_bert):
    one_error_line(capsys, ["convert", tiny_bert, "--modules", "re:["], "'re:['", "not a valid regular expression")


def test_unknown_model_offline_lists_the_aliases(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_error_line(capsys, ["convert", "no-such-model"], "'no-such-model'", "minilm-l6", "smollm2-135m",
                   "HF_HUB_OFFLINE")


def test_unknown_model_with_unreachable_hub_fails_fast(capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_hub_reachable", lambda endpoint, timeout=models.HUB_TIMEOUT_S: False)
    t0 = time.perf_counter()
    one_error_line(capsys, ["convert", "no-such-model"], "minilm-l6", "unreachable")
    assert time.perf_counter() - t0 < 10


# -- train -----------------------------------------------------------------------------------------------


def test_train_config_path_that_does_not_exist(capsys, tmp_path):
    one_error_line(capsys, ["train", "--config", str(tmp_path / "run.cfg"), "--dry-run"], "run.cfg",
                   "does not exist")


def test_train_config_that_is_not_toml(capsys, tmp_path):
    path = tmp_path / "run.cfg"
    path.write_text("model: minilm-l6\nepochs: 2\n")
    one_error_line(capsys, ["train", "--config", str(path), "--dry-run"], "run.cfg", "is not a TOML file")


def test_train_dry_run_validates_device_noise(capsys):
    one_error_line(capsys, ["train", "--dry-run", "--set", "noise.mode=device",
                            "--set", 'noise.device_model={name = "gaussian", eta = -1}'], "noise.device", "eta")
    one_error_line(capsys, ["train", "--dry-run", "--set", "noise.mode=device", "--set", "noise.device_model=nosuch"],
                   "noise.device", "unknown device model 'nosuch'")


def test_train_dry_run_refuses_infinite_lr(capsys):
    one_error_line(capsys, ["train", "--dry-run", "--lr", "inf"], "lr", "finite")


def test_train_dry_run_refuses_fractional_batch_size(capsys):
    one_error_line(capsys, ["train", "--dry-run", "--set", "batch_size=2.5"], "batch_size", "integer", "2.5")


def test_train_bad_flag_value_is_one_line(capsys):
    one_error_line(capsys, ["train", "--epochs", "two"], "--epochs", "two")


def test_train_dry_run_warns_for_pcm_on_ideal_tiles(capsys):
    with pytest.warns(UserWarning, match="'mapped'"):
        assert main(["train", "--dry-run", "--set", "noise.mode=device", "--set", "noise.device_model=pcm"]) == 0
    assert 'rpu = "auto"' in capsys.readouterr().out


# -- montecarlo ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["-3", "0"])
def test_montecarlo_workers_must_be_positive(capsys, tmp_path, workers):
    one_error_line(capsys, ["montecarlo", "--method", "a=", "--out", str(tmp_path), "--workers", workers],
                   "--workers", workers)


def test_montecarlo_malformed_device_params(capsys, tmp_path):
    one_error_line(capsys, ["montecarlo", "--method", "a=", "--out", str(tmp_path / "r"),
                            "--device", "gaussian", "--device-params", "{eta: 0.1"], "--device-params", "JSON")
    one_error_line(capsys, ["montecarlo", "--method", "a=", "--out", str(tmp_path / "r"),
                            "--device", "gaussian", "--device-params", "[1]"], "--device-params", "object")


def test_montecarlo_method_without_equals(capsys, tmp_path):
    one_error_line(capsys, ["montecarlo", "--method", "grasp", "--out", str(tmp_path / "r")], "--method",
                   "NAME=ADAPTER_DIR")


def test_montecarlo_unknown_device_model(capsys, tiny_bert, tmp_path):
    one_error_line(capsys, mc(tiny_bert, tmp_path / "r", "--method", "a=", "--device", "nosuch"),
                   "unknown device model 'nosuch'")


def test_montecarlo_run_dir_of_another_config(capsys, tiny_bert, tmp_path):
    assert main(mc(tiny_bert, tmp_path / "r", "--method", "base=")) == 0
    capsys.readouterr()
    one_error_line(capsys, mc(tiny_bert, tmp_path / "r", "--method", "base=", "--seed", "7"),
                   "different configuration", "--out")


def test_montecarlo_corrupted_adapter(capsys, tiny_bert, tmp_path, adapter):
    weights = adapter / "adapter.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[8 + int.from_bytes(raw[:8], "little")] ^= 0x01  # one bit of the first tensor value
    weights.write_bytes(bytes(raw))
    one_error_line(capsys, mc(tiny_bert, tmp_path / "r", "--method", f"g={adapter}"), "tensor checksum mismatch",
                   "re-save or retrain")


def test_montecarlo_zeroed_fingerprint_digest(capsys, tiny_bert, tmp_path, adapter):
    path = adapter / "adapter_config.json"
    data = json.loads(path.read_text())
    data["fingerprint"]["digest"] = "0" * 16
    path.write_text(json.dumps(data))
    one_error_line(capsys, mc(tiny_bert, tmp_path / "r", "--method", f"g={adapter}"), "fingerprint digest",
                   f"trained on {tiny_bert}", "pass that base")


def test_montecarlo_non_finite_logits(capsys, tiny_bert, tmp_path):
    """The error comes mid-run: the chips bar is finished first, then one error line follows."""
    code = main(mc(tiny_bert, tmp_path / "r", "--method", "base=", "--device-params", '{"eta": 1e30}'))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    *bars, error = lines
    assert bars and all(b.startswith("chips:") for b in bars), lines
    assert error.startswith("analog-peft: error: method 'base' on chip 0 at t = 1s (gaussian)"), error
    assert "not finite" in error


# -- --debug ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_re_raises_with_the_traceback(tmp_path, where):
    cmd = ["convert", str(tmp_path / "missing")]
    argv = ["--debug", *cmd] if where == "before" else [*cmd, "--debug"]
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        main(argv)


def test_only_validation_errors_become_one_liners(capsys, monkeypatch):
    import analog_peft.cli as cli

    def fail(exc):
        def cmd(args):
            raise exc
        return cmd

    monkeypatch.setattr(cli, "_cmd_report", fail(ValueError("bad input; fix it")))
    one_error_line(capsys, ["report", "anything"], "bad input; fix it")
    monkeypatch.setattr(cli, "_cmd_report", fail(KeyError("a bug")))
    with pytest.raises(KeyError):  # a bug keeps its traceback
        main(["report", "anything"])


def test_montecarlo_config_file_round_trip_and_its_errors(capsys, tiny_bert, adapter, tmp_path):
    """A run writes montecarlo_config.toml; --config re-runs it (the same run: resumed, not mixed), --set edits
    it, and flags beside --config or --set without it are refused in one line."""
    from analog_peft.cli import main
    from analog_peft.montecarlo.engine import CONFIG_TOML, MonteCarloConfig
    from analog_peft.training.tomlio import read_file

    out = tmp_path / "run"
    assert main(mc(tiny_bert, out, "--adapter", f"grasp={adapter}", "--adapter", "base=")) == 0
    saved = out / CONFIG_TOML
    config = MonteCarloConfig.from_toml_dict(read_file(saved))
    assert [(m.name, m.adapter) for m in config.methods] == [("grasp", str(adapter)), ("base", None)]
    assert config.device_model == "gaussian" and config.rpu == "ideal" and config.n_chips == 1
    first = (out / "results.csv").read_bytes()
    capsys.readouterr()
    assert main(["montecarlo", "--config", str(saved), "--set", "n_chips=2", "--dry-run"]) == 0
    assert MonteCarloConfig.from_toml_dict(__import__("tomllib").loads(capsys.readouterr().out)).n_chips == 2
    assert main(["montecarlo", "--config", str(saved), "--set", "n_chips=2", "--out", str(out)]) == 0
    before, after = first.decode().splitlines(), (out / "results.csv").read_text().splitlines()
    assert set(before) < set(after) and len(after) == len(before) + 4  # chip 0 kept, chip 1 added (2 methods × 2)
    assert MonteCarloConfig.from_toml_dict(read_file(saved)).n_chips == 2
    capsys.readouterr()
    one_error_line(capsys, ["montecarlo", "--config", str(saved), "--chips", "3", "--out", str(out)],
                   "--set", "--chips")
    one_error_line(capsys, ["montecarlo", "--set", "n_chips=3", "--out", str(out)], "--config")
    one_error_line(capsys, ["montecarlo", "--config", str(saved), "--set", "colour=1", "--out", str(out)],
                   "colour", "unknown")
    one_error_line(capsys, ["montecarlo", "--out", str(out)], "--adapter")
