"""Hugging Face PEFT on converted (analog) models: every supported method, saving, merging, chips, training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import (
    IA3Config,
    LoHaConfig,
    LoKrConfig,
    LoraConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptTuningConfig,
    VeraConfig,
    get_peft_model,
)
from peft.tuners.tuners_utils import BaseTunerLayer

import analog_peft.peft_bridge as bridge
from analog_peft.chips import ChipProgrammer
from analog_peft.cli import _parse_methods
from analog_peft.convert import analog_layers, analog_tiles, convert
from analog_peft.deploy import deploy
from analog_peft.methods import AdapterFileError, attach
from analog_peft.methods import LoraConfig as OwnLoraConfig
from analog_peft.models import load_classifier, load_tokenizer
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo
from analog_peft.peft_bridge.adapter import PeftAdapted, attach_peft, load_peft
from analog_peft.training import ConfigError, TrainConfig, load_trained, train

GAUSS = {"name": "gaussian", "params": {"eta": 0.01}}
QV = ["query", "value"]
#: every PEFT method the bridge supports on analog layers (a fresh config per call: PEFT mutates them)
METHODS = {
    "lora": lambda: LoraConfig(task_type="SEQ_CLS", target_modules=QV, r=4, lora_alpha=8),
    "rslora": lambda: LoraConfig(task_type="SEQ_CLS", target_modules=QV, r=4, lora_alpha=8, use_rslora=True),
    "dora": lambda: LoraConfig(task_type="SEQ_CLS", target_modules=QV, r=4, lora_alpha=8, use_dora=True),
    "ia3": lambda: IA3Config(task_type="SEQ_CLS", target_modules=[*QV, "output.dense"],
                             feedforward_modules=["output.dense"]),
    "vera": lambda: VeraConfig(task_type="SEQ_CLS", target_modules=QV, r=8),
    "loha": lambda: LoHaConfig(task_type="SEQ_CLS", target_modules=QV, r=4),
    "lokr": lambda: LoKrConfig(task_type="SEQ_CLS", target_modules=QV, r=4),
    "prompt_tuning": lambda: PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=4),
}
TUNERS = [m for m in METHODS if m != "prompt_tuning"]  # the ones with layers (mergeable)
RPUS = ["ideal", "mapped"]


@pytest.fixture(scope="module")
def batch(tiny_bert, sst2_sentences) -> dict[str, torch.Tensor]:
    tok = load_tokenizer(tiny_bert)
    enc = tok(sst2_sentences[:8], padding=True, truncation=True, max_length=24, return_tensors="pt")
    return {**enc, "labels": torch.tensor([0, 1] * 4)}


def base(tiny_bert: str, rpu: str | None) -> torch.nn.Module:
    model = load_classifier(tiny_bert, num_labels=2, seed=0)
    if rpu:
        convert(model, rpu)
    return model.eval()


def logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def wrapped(tiny_bert: str, rpu: str | None, method: str) -> PeftModel:
    model = base(tiny_bert, rpu)
    torch.manual_seed(0)  # after the conversion (aihwkit's tile init draws from the global RNG)
    return get_peft_model(model, METHODS[method]()).eval()


def perturb(model: torch.nn.Module, scale: float = 0.1) -> None:
    """Move every adapter parameter away from its (identity) initialisation."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad and "classifier" not in name:
                p.add_(scale * torch.randn(p.shape, generator=gen))


def tile_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t.tile.weight.detach().clone() for _, t in analog_tiles(model)]


def test_without_the_bridge_peft_fails_on_analog_layers(tiny_bert):
    """The tracker issue: aihwkit keeps weights in tiles (``weight is None``) and PEFT crashes placing adapters."""
    bridge.unregister()
    try:
        with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'device'"):
            get_peft_model(base(tiny_bert, "ideal"), LoraConfig(target_modules=QV))
    finally:
        bridge.register()
    get_peft_model(base(tiny_bert, "ideal"), LoraConfig(target_modules=QV))  # registered again: works


@pytest.mark.parametrize("rpu", RPUS)
@pytest.mark.parametrize("method", list(METHODS))
def test_outputs_unchanged_at_initialisation(tiny_bert, batch, method, rpu):
    """LoRA/rsLoRA B = 0, DoRA m = ‖W‖ (from the tiles), (IA)^3 ones, VeRA λ_b = 0, LoHa/LoKr a zero factor."""
    plain = logits(base(tiny_bert, rpu), batch)
    model = wrapped(tiny_bert, rpu, method)
    layers = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
    if method == "prompt_tuning":  # virtual tokens change the input by design: the base stays untouched
        # (PEFT's disable_adapter() breaks on prompt-learning classifiers, digital too: no generation method)
        assert (logits(model.get_base_model(), batch) - plain).abs().max() <= 1e-5
        digital = wrapped(tiny_bert, None, method)  # same seed, same prompt: analog == digital
        assert (logits(model, batch) - logits(digital, batch)).abs().max() <= 1e-5
        return
    assert layers and all(isinstance(m, bridge.AnalogTunerMixin) for m in layers)
    assert (logits(model, batch) - plain).abs().max() <= 1e-5


@pytest.mark.parametrize("method", list(METHODS))
def test_a_few_steps_lower_the_loss_through_the_analog_layers(tiny_bert, batch, method):
    """The task head is frozen: only the adapter (gradients through the analog tiles) can lower the loss."""
    model = wrapped(tiny_bert, "mapped", method)
    for name, p in model.named_parameters():
        if "classifier" in name:
            p.requires_grad_(False)
    target = {**batch, "labels": torch.ones_like(batch["labels"])}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    with torch.no_grad():
        before = float(model(**target).loss)
    for _ in range(8):
        loss = model(**target).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = float(model(**target).loss)
    assert after < before, (before, after)


@pytest.mark.parametrize("rpu", RPUS)
@pytest.mark.parametrize("method", list(METHODS))
def test_save_pretrained_and_from_pretrained_reproduce_outputs(tiny_bert, batch, method, rpu, tmp_path):
    model = wrapped(tiny_bert, rpu, method)
    perturb(model)
    expected = logits(model, batch)
    model.save_pretrained(tmp_path / "a")
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(base(tiny_bert, rpu), tmp_path / "a").eval()
    assert torch.equal(logits(loaded, batch), expected)
    if rpu == "ideal":  # the same adapter on the digital base (PEFT's own layers) computes the same function
        digital = PeftModel.from_pretrained(base(tiny_bert, None), tmp_path / "a").eval()
        assert (logits(digital, batch) - expected).abs().max() <= 1e-5


@pytest.mark.parametrize("rpu", RPUS)
@pytest.mark.parametrize("method", TUNERS)
def test_merge_into_the_tiles_equals_unmerged_and_unmerge_restores(tiny_bert, batch, method, rpu):
    model = wrapped(tiny_bert, rpu, method)
    perturb(model)
    unmerged, before = logits(model, batch), tile_weights(model)
    model.merge_adapter()
    after = tile_weights(model)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), "merge must write the tiles"
    assert (logits(model, batch) - unmerged).abs().max() <= 1e-4
    model.unmerge_adapter()
    assert all(torch.equal(a, b) for a, b in zip(before, tile_weights(model), strict=True))  # bit for bit
    assert torch.equal(logits(model, batch), unmerged)
    merged = model.merge_and_unload()
    assert not any(isinstance(m, BaseTunerLayer) for m in merged.modules())
    assert len(analog_layers(merged)) == len(analog_layers(base(tiny_bert, rpu)))  # the adapter is in the tiles
    assert (logits(merged, batch) - unmerged).abs().max() <= 1e-4


def test_merge_on_the_digital_model_is_peft_own(tiny_bert, batch):
    model = wrapped(tiny_bert, None, "dora")
    perturb(model)
    unmerged = logits(model, batch)
    assert not any(isinstance(m, bridge.AnalogTunerMixin) for m in model.modules())
    assert (logits(model.merge_and_unload(), batch) - unmerged).abs().max() <= 1e-4


@pytest.mark.parametrize("rpu", [None, "mapped"])
def test_several_named_adapters(tiny_bert, batch, rpu, tmp_path):
    """add_adapter / set_adapter / several active / load_adapter(name) / merging two / delete, as PEFT users expect.

    No task type: PEFT's copies of the task head (``modules_to_save``) allow one active adapter only.
    """
    model = base(tiny_bert, rpu)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(target_modules=QV, r=4, lora_alpha=8)).eval()
    perturb(model)
    model.add_adapter("second", LoraConfig(target_modules=QV, r=2, lora_alpha=4))
    model.set_adapter("second")
    perturb(model, 0.2)
    second = logits(model, batch)
    model.set_adapter("default")
    first = logits(model, batch)
    assert not torch.allclose(first, second)
    model.save_pretrained(tmp_path / "both")
    assert (tmp_path / "both" / "second" / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(base(tiny_bert, rpu), tmp_path / "both").eval()
    loaded.load_adapter(tmp_path / "both" / "second", adapter_name="second")
    assert torch.equal(logits(loaded, batch), first)
    loaded.set_adapter("second")
    assert torch.equal(logits(loaded, batch), second)
    model.base_model.set_adapter(["default", "second"])  # both active: the deltas add up
    both = logits(model, batch)
    tiles = tile_weights(model)
    model.merge_adapter(["default", "second"])
    assert (logits(model, batch) - both).abs().max() <= 1e-4
    model.unmerge_adapter()  # analog: the tiles bit for bit; digital: PEFT subtracts the deltas again
    assert all(torch.equal(a, b) for a, b in zip(tiles, tile_weights(model), strict=True))
    model.delete_adapter("second")
    model.set_adapter("default")
    assert (logits(model, batch) - first).abs().max() <= (0 if rpu else 1e-6)


def test_prefix_tuning_on_a_converted_causal_lm(tiny_llama, tmp_path):
    """Prefix tuning touches no layer; BERT has no cache (PEFT refuses it there), a converted Llama works."""
    ids = torch.randint(1, 128, (2, 6))
    convert(tiny_llama, "mapped")
    plain = tiny_llama(input_ids=ids).logits.detach()
    model = get_peft_model(tiny_llama, PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with torch.no_grad(), model.disable_adapter():
        assert (model(input_ids=ids).logits - plain).abs().max() <= 1e-5
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    losses = []
    for _ in range(5):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    model.eval()
    expected = model(input_ids=ids).logits.detach()
    model.save_pretrained(tmp_path / "prefix")
    rebuilt = _tiny_llama_like(tiny_llama)
    convert(rebuilt, "mapped")
    loaded = PeftModel.from_pretrained(rebuilt, tmp_path / "prefix").eval()
    assert torch.equal(loaded(input_ids=ids).logits.detach(), expected)
    assert loaded.generate(input_ids=ids[:1], max_new_tokens=3, do_sample=False).shape == (1, 9)


def _tiny_llama_like(model: torch.nn.Module) -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)  # the tiny_llama fixture's seed: the same random weights
    return LlamaForCausalLM(model.config).eval()


# -- the toolkit: Monte Carlo, deployment, base checks, training ------------------------------------------


@pytest.fixture(scope="module")
def peft_dirs(tiny_bert, tmp_path_factory) -> dict[str, str]:
    """Every method saved by the toolkit (save_pretrained + base sidecar), trained on the ideal analog base."""
    root = tmp_path_factory.mktemp("peft")
    out = {}
    for method in METHODS:
        adapted = PeftAdapted(wrapped(tiny_bert, "ideal", method))
        perturb(adapted, 0.05)
        out[method] = str(adapted.save_adapter(root / method))
    return out


@pytest.mark.parametrize("deployment", ["periphery", "fused"])
def test_three_chip_montecarlo_with_every_peft_method(tiny_bert, peft_dirs, deployment, tmp_path):
    methods = [MethodSpec(name, f"peft:{path}") for name, path in peft_dirs.items()]
    config = MonteCarloConfig(methods=methods, base_model=tiny_bert, max_examples=16, batch_size=16, n_chips=3,
                              times=[1.0, 86400.0], device_model=GAUSS, rpu="mapped", seed=5, deployment=deployment)
    df = run_montecarlo(config, tmp_path / "mc", progress=False)
    analog = df[(df.chip >= 0) & (df.metric == "accuracy")]
    assert set(analog.method) == set(METHODS)
    assert analog.groupby("method").size().eq(3 * 2).all()  # 3 chips × 2 times
    assert df.value.notna().all() and set(df[df.chip == -1].method) == set(METHODS)
    manifest = json.loads((tmp_path / "mc" / "manifest.json").read_text())
    assert manifest["versions"]["peft"] == "0.21.2"
    assert all(m["adapter"].startswith("peft:/") for m in manifest["config"]["methods"])
    # trained on ideal tiles (perfect periphery, like mapped): mapped is a mapping choice, not an override
    assert all(c == {"rpu": {"name": "mapped", "options": {}}, "recorded": "ideal", "overridden": False}
               for c in manifest["conversions"].values())


def test_periphery_shares_chips_with_own_methods_and_fused_programs_the_merged_weights(tiny_bert, peft_dirs, batch,
                                                                                        tmp_path):
    own = attach(load_classifier(tiny_bert, num_labels=2, seed=0), OwnLoraConfig(r=4))
    own.save_adapter(tmp_path / "own")
    peri = deploy(tiny_bert, f"peft:{peft_dirs['dora']}", "periphery", "mapped")
    fused = deploy(tiny_bert, f"peft:{peft_dirs['dora']}", "fused", "mapped")
    mine = deploy(tiny_bert, str(tmp_path / "own"), "periphery", "mapped")
    assert ChipProgrammer(peri.model, GAUSS).shares_chips_with(ChipProgrammer(mine.model, GAUSS))  # paired chips
    assert not ChipProgrammer(fused.model, GAUSS).shares_chips_with(ChipProgrammer(mine.model, GAUSS))
    assert not any(isinstance(m, BaseTunerLayer) for m in fused.model.modules())
    assert (logits(fused.model, batch) - logits(peri.model, batch)).abs().max() <= 1e-4
    assert [n for n, _ in analog_tiles(peri.model)] == [n for n, _ in analog_tiles(mine.model)]


def test_an_adapter_of_another_base_is_refused_in_one_line(tiny_bert, peft_dirs, tmp_path):
    with pytest.raises(AdapterFileError, match=r"was trained on base .* this model is 'minilm-l6'") as err:
        deploy("minilm-l6", f"peft:{peft_dirs['lora']}", "periphery", "ideal")
    assert "\n" not in str(err.value)
    edited = Path(shutil.copytree(peft_dirs["lora"], tmp_path / "edited"))
    meta = json.loads((edited / "analog_peft_base.json").read_text())
    meta["fingerprint"]["targets"] = {k: [v[0], v[1] * 2] for k, v in meta["fingerprint"]["targets"].items()}
    (edited / "analog_peft_base.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterFileError, match=r"has shape \[in, out\]") as err:
        load_peft(base(tiny_bert, "ideal"), edited)
    assert "\n" not in str(err.value)
    with pytest.raises(AdapterFileError, match="is not a PEFT adapter folder") as err:
        deploy(tiny_bert, f"peft:{tmp_path / 'own'}", "periphery", "ideal")
    weights = edited / "adapter_model.safetensors"
    shutil.copy(Path(peft_dirs["lora"]) / "analog_peft_base.json", edited / "analog_peft_base.json")
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(AdapterFileError, match="checksum mismatch"):
        load_peft(base(tiny_bert, "ideal"), edited)


def test_the_peft_model_exposes_the_analog_tiles_under_their_conversion_names(tiny_bert):
    plain = base(tiny_bert, "mapped")
    names = [n for n, _ in analog_tiles(plain)]
    adapted = attach_peft(plain, {"peft_type": "LORA", "r": 4, "target_modules": QV})
    assert [n for n, _ in analog_tiles(adapted)] == names
    chips = ChipProgrammer(adapted, GAUSS, seed=3).program(0)
    reference = ChipProgrammer(base(tiny_bert, "mapped"), GAUSS, seed=3).program(0)
    assert all(torch.equal(a, b) for a, b in zip(chips.weights().values(), reference.weights().values(), strict=True))


@pytest.mark.parametrize(("peft_config", "match"), [
    ({}, 'needs peft_config'),
    ('{peft_type="LORA", target_modules=".*\\.query"}', "must be a table"),
    ({"r": 8}, "needs a peft_type"),
    ({"peft_type": "NOPE"}, "unknown peft_type 'NOPE'"),
    ({"peft_type": "LORA", "rank": 8}, r"LoraConfig has no field\(s\) \['rank'\]"),
    ({"peft_type": "LORA", "target_modules": ".*query", "layers_to_transform": 1}, r"peft_config \(LORA\): "),
])
def test_training_config_errors_are_one_line(peft_config, match):
    with pytest.raises(ConfigError, match=match) as err:
        TrainConfig(method="peft", peft_config=peft_config)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match='used only with method = "peft"'):
        TrainConfig(method="lora", peft_config={"peft_type": "LORA"})


def test_train_method_peft_with_device_noise_saves_peft_format(tiny_bert, tmp_path):
    kw = {"model": tiny_bert, "task": "sst2", "train_examples": 16, "eval_examples": 8, "batch_size": 8,
          "max_length": 16, "progress": False, "num_threads": 1, "log_every": 1, "lr": 2e-2, "max_steps": 2,
          "method": "peft", "peft_config": {"peft_type": "LORA", "r": 4, "target_modules": QV}}
    noisy = train(TrainConfig(**kw, noise={"mode": "device", "device_model": {"name": "gaussian", "eta": 0.05}},
                              out_dir=str(tmp_path / "noisy")))
    clean = train(TrainConfig(**kw, rpu="ideal", out_dir=str(tmp_path / "clean")))
    best = tmp_path / "noisy" / "adapter" / "best"
    assert {"adapter_config.json", "adapter_model.safetensors", "analog_peft_base.json"} <= {p.name for p in best.iterdir()}
    assert json.loads((best / "adapter_config.json").read_text())["peft_type"] == "LORA"
    assert noisy.summary["versions"]["peft"] == "0.21.2" and noisy.summary["method"] == "peft"
    assert noisy.summary["trainable_params"]["adapter"] == 2 * 2 * 4 * (32 + 32)
    from safetensors.torch import load_file

    a = load_file(str(best / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "clean" / "adapter" / "best" / "adapter_model.safetensors"))
    assert any(not torch.equal(a[k], b[k]) for k in a), "device noise in the loop must change the training"
    assert clean.steps == noisy.steps == 2
    loaded = load_peft(base(tiny_bert, "ideal"), best)  # PeftModel.from_pretrained behind the base check
    assert isinstance(loaded, PeftAdapted)
    _, adapted, config = load_trained(tmp_path / "noisy")  # the run directory loads like any other
    assert isinstance(adapted, PeftAdapted) and config.method == "peft"
    (spec,) = _parse_methods([f"lora=peft:{tmp_path / 'noisy'}"])  # montecarlo --method NAME=peft:RUN_DIR
    assert spec["adapter"] == f"peft:{best}"
    fused = deploy(tiny_bert, str(best), "fused", "mapped")  # a plain folder is recognised as PEFT's too
    assert not any(isinstance(m, BaseTunerLayer) for m in fused.model.modules())


def test_a_peft_run_resumed_after_a_stop_equals_the_uninterrupted_run(tiny_bert, tmp_path):
    """The trainer state holds the PEFT adapter (save_pretrained) and reloads it trainable, bit for bit."""
    from safetensors.torch import load_file

    kw = {"model": tiny_bert, "task": "sst2", "train_examples": 24, "eval_examples": 8, "batch_size": 8,
          "max_length": 16, "progress": False, "num_threads": 1, "log_every": 1, "lr": 2e-2, "epochs": 1,
          "method": "peft", "peft_config": {"peft_type": "LORA", "r": 4, "target_modules": QV, "use_dora": True},
          "noise": {"mode": "device", "device_model": {"name": "gaussian", "eta": 0.02}}}
    full = train(TrainConfig(**kw, out_dir=str(tmp_path / "full")))
    assert train(TrainConfig(**kw, out_dir=str(tmp_path / "part"), stop_after_steps=1)).interrupted
    resumed = train(TrainConfig(**kw, out_dir=str(tmp_path / "part")))
    assert resumed.steps == full.steps == 3
    a, b = (load_file(str(tmp_path / r / "adapter" / "last" / "adapter_model.safetensors")) for r in ("full", "part"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
