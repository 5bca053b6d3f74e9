"""No silent wrong output: adapter checksums and non-finite tensors, the base fingerprint digest, non-finite
logits in evaluation, bad module patterns, model names that cannot load, and device/preset warnings."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from analog_peft import models
from analog_peft.convert import ConversionError, convert
from analog_peft.deploy import adapter_pooling
from analog_peft.finite import NonFiniteError
from analog_peft.methods import (
    AdapterError,
    AdapterFileError,
    GraspConfig,
    HeadConfig,
    LoraConfig,
    attach,
    load_adapter,
)
from analog_peft.methods.io import CHECKSUM_KEY, tensor_checksum
from analog_peft.models import ModelNotFoundError, load_classifier
from analog_peft.montecarlo.engine import EvalSet, MethodSpec, MonteCarloConfig, run_montecarlo, score
from analog_peft.training.config import ConfigError, TrainConfig
from analog_peft.training.evaluate import predict_labels

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = ROOT / "artifacts" / "sst2_minilm" / "grasp" / "adapter" / "best"


def fresh(tiny_bert: str) -> nn.Module:
    return load_classifier(tiny_bert, num_labels=2, seed=0)


def saved_adapter(tiny_bert: str, directory: Path, poison: float | None = None) -> Path:
    """A GRASP adapter of the tiny BERT, perturbed (and one tensor set to ``poison`` if given)."""
    adapted = attach(fresh(tiny_bert), GraspConfig(k=4))
    with torch.no_grad():
        for p in adapted.adapter_parameters():
            p.add_(0.05 * torch.randn_like(p))
        if poison is not None:
            adapted.adapter_parameters()[0].view(-1)[0] = poison
    adapted.save_adapter(directory)
    return directory


def edit_config(directory: Path, change) -> None:
    path = directory / "adapter_config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def flip_data_byte(path: Path, offset: int = 0) -> None:
    """Flip the lowest bit of byte ``offset`` of the tensor data (after the safetensors header)."""
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    raw[start + offset] ^= 0x01
    path.write_bytes(bytes(raw))


# -- adapter tensor checksum -----------------------------------------------------------------------------


def test_saved_adapter_records_the_tensor_checksum(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    config = json.loads((d / "adapter_config.json").read_text())
    assert config[CHECKSUM_KEY] == tensor_checksum(load_file(str(d / "adapter.safetensors")))
    load_adapter(fresh(tiny_bert), d)  # verifies without a warning or an error


def test_bit_flipped_adapter_is_refused(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    flip_data_byte(d / "adapter.safetensors")
    tensors = load_file(str(d / "adapter.safetensors"))
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values())  # still finite, just other numbers
    with pytest.raises(AdapterFileError, match=r"adapter .*: tensor checksum mismatch — the file was modified or "
                                               r"corrupted; re-save or retrain it"):
        load_adapter(fresh(tiny_bert), d)


@pytest.mark.parametrize("poison", [math.nan, math.inf])
def test_non_finite_adapter_tensor_is_refused_naming_it(tiny_bert, tmp_path, poison):
    d = saved_adapter(tiny_bert, tmp_path / "a", poison=poison)  # saved with its (matching) checksum
    bad = [k for k, t in load_file(str(d / "adapter.safetensors")).items() if not torch.isfinite(t).all()]
    assert len(bad) == 1
    with pytest.raises(AdapterFileError, match=rf"tensor '{bad[0]}' holds 1 non-finite value"):
        load_adapter(fresh(tiny_bert), d)


def test_nan_written_into_the_file_is_refused(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    path = d / "adapter.safetensors"
    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key].view(-1)[0] = math.nan
    save_file(tensors, str(path))
    with pytest.raises(AdapterFileError, match=rf"tensor '{key}' holds 1 non-finite value"):
        load_adapter(fresh(tiny_bert), d)


def test_adapter_without_checksum_still_loads_with_a_warning(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    edit_config(d, lambda c: c.pop(CHECKSUM_KEY))
    with pytest.warns(UserWarning, match="no tensor checksum"):
        load_adapter(fresh(tiny_bert), d)


def test_committed_artifact_loads_and_its_digest_matches():
    config = json.loads((ARTIFACT / "adapter_config.json").read_text())
    assert CHECKSUM_KEY not in config  # saved before checksums existed
    with pytest.warns(UserWarning, match="no tensor checksum"):
        adapted = load_adapter(load_classifier("minilm-l6", 2, pooling=adapter_pooling(ARTIFACT)), ARTIFACT)
    assert adapter_pooling(ARTIFACT) == "native"  # saved before heads were recorded: the frozen pooler
    assert adapted.fingerprint()["digest"] == config["fingerprint"]["digest"]
    assert adapted.fingerprint()["base_model"] == "minilm-l6"


def test_head_only_adapter_is_checksummed_and_checked(tiny_bert, tmp_path):
    head = attach(fresh(tiny_bert), HeadConfig())
    d = head.save_adapter(tmp_path / "h")
    assert CHECKSUM_KEY in json.loads((d / "adapter_config.json").read_text())
    load_adapter(fresh(tiny_bert), d)
    flip_data_byte(d / "adapter.safetensors")
    with pytest.raises(AdapterFileError, match="tensor checksum mismatch"):
        load_adapter(fresh(tiny_bert), d)
    with torch.no_grad():
        head.model.classifier.weight[0, 0] = math.inf
    head.save_adapter(tmp_path / "h2")
    with pytest.raises(AdapterFileError, match=r"tensor 'classifier.weight' holds 1 non-finite value"):
        load_adapter(fresh(tiny_bert), tmp_path / "h2")


# -- base fingerprint digest -----------------------------------------------------------------------------


def test_fingerprint_records_the_base(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    fp = json.loads((d / "adapter_config.json").read_text())["fingerprint"]
    assert fp["base_model"] == tiny_bert and len(fp["digest"]) == 16


def test_zeroed_fingerprint_digest_is_refused(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    edit_config(d, lambda c: c["fingerprint"].update(digest="0" * 16))
    model = fresh(tiny_bert)
    with pytest.raises(AdapterFileError, match=rf"base fingerprint digest '0{{16}}' does not match this base "
                                               rf"model .*trained on {tiny_bert}: pass that base"):
        load_adapter(model, d)
    assert not any("base_layer" in n for n, _ in model.named_modules())  # refused before injecting


def test_fingerprint_of_another_base_names_the_trained_base(tiny_bert, tmp_path):
    d = saved_adapter(tiny_bert, tmp_path / "a")
    edit_config(d, lambda c: c["fingerprint"].update(digest="0" * 16, base_model="minilm-l6"))
    with pytest.raises(AdapterFileError, match=r"trained on minilm-l6: pass that base"):
        load_adapter(fresh(tiny_bert), d)


# -- non-finite logits -----------------------------------------------------------------------------------


class NanModel(nn.Module):
    """Returns NaN logits for every input."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
        return SimpleNamespace(logits=torch.full((input_ids.shape[0], 2), math.nan))


def test_score_refuses_nan_logits():
    eval_set = EvalSet([{"input_ids": torch.ones(3, 4, dtype=torch.long)}], [0, 1, 0], "x")
    with pytest.raises(NonFiniteError, match=r"^evaluation, batch 0: 6 of 6 logits are not finite"):
        score(NanModel(), eval_set)


def test_training_evaluation_refuses_nan_logits():
    features = [{"input_ids": torch.ones(4, dtype=torch.long), "labels": 0}] * 3
    model = NanModel()
    model.method = "grasp"

    def collate(feats):
        return {"input_ids": torch.stack([f["input_ids"] for f in feats])}

    with pytest.raises(NonFiniteError, match=r"evaluation of method 'grasp', examples 0-1: 4 of 4 logits"):
        predict_labels(model, features, collate, batch_size=2)


def test_montecarlo_stops_on_non_finite_logits_naming_method_chip_and_time(tiny_bert, tmp_path):
    config = MonteCarloConfig(methods=[MethodSpec("base", None)], base_model=tiny_bert, max_examples=8, n_chips=1,
                              times=[3600.0], device_model={"name": "gaussian", "eta": 1e30}, rpu="ideal")
    with pytest.raises(NonFiniteError, match=r"method 'base' on chip 0 at t = 1h \(gaussian\).*not finite"):
        run_montecarlo(config, tmp_path / "mc", progress=False)
    assert not list((tmp_path / "mc" / "chips").glob("chip_*.csv"))


# -- module patterns -------------------------------------------------------------------------------------


def test_invalid_regex_pattern_is_named(tiny_bert):
    with pytest.raises(AdapterError, match=r"module pattern 're:\[' is not a valid regular expression"):
        attach(fresh(tiny_bert), LoraConfig(target_modules=["re:["]))
    with pytest.raises(ConversionError, match=r"'re:\[' is not a valid regular expression"):
        convert(fresh(tiny_bert), "ideal", modules=["re:["])


# -- model names -----------------------------------------------------------------------------------------


def test_missing_model_directory(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"model directory .*missing/dir does not exist.*minilm-l6"):
        models.resolve(str(tmp_path / "missing" / "dir"))


def test_unknown_model_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=r"'no-such-model' is no alias \(minilm-l6, smollm2-135m\).*"
                                                 r"HF_HUB_OFFLINE is set"):
        models.resolve("no-such-model")


def test_unknown_model_with_unreachable_hub_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_hub_reachable", lambda endpoint, timeout=models.HUB_TIMEOUT_S: False)
    t0 = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"no alias \(minilm-l6, smollm2-135m\).*hub .* is unreachable"):
        load_classifier("no-such-model", num_labels=2)
    assert time.perf_counter() - t0 < 5
    monkeypatch.undo()


def test_the_hub_probe_is_bounded_and_only_local_here():
    """The real probe, against loopback only (no traffic leaves the machine): a listening port is reachable, a
    closed one is not, and a connect that never completes is given up after the timeout."""
    import socket
    import threading

    models._hub_reachable.cache_clear()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert models._hub_reachable(f"https://127.0.0.1:{server.getsockname()[1]}", timeout=2.0)
        closed = server.getsockname()[1]
    models._hub_reachable.cache_clear()
    assert not models._hub_reachable(f"https://127.0.0.1:{closed}", timeout=2.0)
    hang = threading.Event()
    real = socket.create_connection

    def hanging_connect(*args, **kwargs):  # a connect that hangs, then times out
        hang.wait(5)
        raise TimeoutError("timed out")

    try:
        socket.create_connection = hanging_connect
        t0 = time.perf_counter()
        assert not models._hub_reachable("https://127.0.0.2:9", timeout=0.3)
        assert time.perf_counter() - t0 < 2
    finally:
        socket.create_connection = real
        hang.set()
        models._hub_reachable.cache_clear()


# -- device noise settings -------------------------------------------------------------------------------


def test_conductance_model_on_ideal_tiles_warns_and_names_mapped():
    config = MonteCarloConfig(methods=[MethodSpec("base", None)], device_model="pcm", rpu="ideal")
    with pytest.warns(UserWarning, match=r"device model 'pcm' .*'ideal' preset.*use the 'mapped' preset"):
        config.validate()
    with pytest.warns(UserWarning, match=r"training noise: device model 'hermes'.*'mapped'"):
        TrainConfig(noise={"mode": "device", "device_model": "hermes", "t": 1.0})  # rpu auto -> ideal
    with warnings.catch_warnings():  # no warning on mapped tiles, nor for weight-space models
        warnings.simplefilter("error")
        MonteCarloConfig(methods=[MethodSpec("base", None)], device_model="pcm", rpu="mapped").validate()
        TrainConfig(noise={"mode": "device", "device_model": "reram", "t": 1.0}, rpu="mapped")
        TrainConfig(noise={"mode": "device", "device_model": {"name": "gaussian", "eta": 0.01}})


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"noise": {"mode": "device", "device_model": {"name": "gaussian", "eta": -1}}}, r"noise.device_model: gaussian: eta"),
        ({"noise": {"mode": "device", "device_model": "nosuch"}}, r"noise.device_model: unknown device model 'nosuch'"),
        ({"noise": {"mode": "device", "device_model": "reram", "t": 3600.0}, "rpu": "mapped"}, r"noise.t: .*fitted"),
        ({"lr": math.inf}, r"lr must be a finite number"),
        ({"lr": "fast"}, r"lr must be a finite number"),
        ({"batch_size": 2.5}, r"batch_size must be an integer, got 2.5"),
        ({"weight_decay": -0.1}, r"weight_decay must be >= 0"),
    ],
)
def test_invalid_noise_and_numbers_are_refused(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**changes)


def test_config_file_that_is_not_toml(tmp_path):
    path = tmp_path / "run.cfg"
    path.write_text("model: minilm\n")
    with pytest.raises(ConfigError, match=r"config file .*run.cfg is not a TOML file"):
        TrainConfig.from_toml(path)
    with pytest.raises(ConfigError, match=r"config file .*other.cfg does not exist"):
        TrainConfig.from_toml(str(tmp_path / "other.cfg"))
