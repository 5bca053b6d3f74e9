"""Decoders on chips: generation and perplexity Monte Carlo on a random-init GPT-2 (Conv1D) and Llama."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import build_tiny_gpt2  # scripts/, on sys.path by conftest

from analog_peft.chips import ChipProgrammer
from analog_peft.deploy import deploy
from analog_peft.methods import BitFitConfig, GraspConfig, IA3Config, LoraConfig, ParaConfig, attach
from analog_peft.models import load_causal_lm
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo

IDEAL = {"name": "gaussian", "params": {"eta": 0.0}}
FAST_METRICS = ["BLEU", "NIST"]  # no Java: METEOR / ROUGE-L / CIDEr start a JVM per call


def _perturb(model) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn_like(p))


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> str:
    return str(build_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), n_layer=2, n_embd=32, max_mrs=60))


@pytest.fixture(scope="module")
def adapters(gpt2_dir, tmp_path_factory) -> dict[str, str]:
    root, out = tmp_path_factory.mktemp("dec-adapters"), {}
    torch.manual_seed(0)
    for name, cfg in [("lora", LoraConfig(r=4)), ("grasp", GraspConfig(k=4)), ("para", ParaConfig(r=4)),
                      ("ia3", IA3Config()), ("bitfit", BitFitConfig())]:
        adapted = attach(load_causal_lm(gpt2_dir), cfg)
        _perturb(adapted)
        adapted.save_adapter(root / name)
        out[name] = str(root / name)
    return out


def gen_config(gpt2_dir: str, adapters: dict[str, str], names=("lora", "para"), **kw) -> MonteCarloConfig:
    base = dict(methods=[MethodSpec(n, adapters[n]) for n in names], base_model=gpt2_dir, task="e2e", split="test",
                max_examples=6, batch_size=4, n_chips=2, times=[1.0, 86400.0], device_model="pcm", rpu="mapped", seed=3,
                metrics=FAST_METRICS, max_new_tokens=8)
    return MonteCarloConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def gen_run(gpt2_dir, adapters, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mc-gen") / "run"
    run_montecarlo(gen_config(gpt2_dir, adapters), out, progress=False)
    return out


def test_kv_cache_decodes_the_same_tokens_on_a_programmed_chip(gpt2_dir, adapters):
    from analog_peft.montecarlo.decoders import GenerationEvaluator

    cfg = gen_config(gpt2_dir, adapters, max_examples=8, max_new_tokens=12).normalized()
    ev = GenerationEvaluator.from_config(cfg)
    for name in ("lora", "para"):  # PARA: prompt vectors from the prefill, reused (cache) or re-detected (no cache)
        dep = deploy(gpt2_dir, adapters[name], "periphery", "mapped", causal=True)
        chips = ChipProgrammer(dep.model, "pcm", seed=3).program(1).drift(86400.0)
        cached, n_cached = ev.generate(dep.model, chips, use_cache=True)
        plain, n_plain = ev.generate(dep.model, chips, use_cache=False)
        assert cached == plain and np.array_equal(n_cached, n_plain)
        assert n_cached.max() > 1  # something was decoded past the first token


def test_generation_table_outputs_and_determinism(gen_run, gpt2_dir, adapters):
    from analog_peft.montecarlo.engine import _Worker
    from analog_peft.montecarlo.files import read_results_csv

    df = read_results_csv(gen_run / "results.csv")
    analog = df[df.chip >= 0]
    assert len(analog) == 2 * 2 * 2 * 2 and set(df.metric) == set(FAST_METRICS)  # methods × chips × times × metrics
    assert set(df[df.chip == -1].method) == {"lora", "para"} and set(df.task) == {"e2e"}
    with np.load(gen_run / "outputs.npz") as z:
        assert z["text"].shape == (2, 2, 2, 6) and z["digital_text"].shape == (2, 6)
        texts = z["text"]
    examples = pd.read_csv(gen_run / "examples.csv", keep_default_na=False)
    assert len(examples) == 6 and all("[" in mr for mr in examples.text) and examples.references.str.len().min() > 0
    rows, arrays = _Worker(gen_config(gpt2_dir, adapters).normalized()).chip_result(1)  # chip 1 again, fresh
    assert np.array_equal(arrays["text"], texts[:, 1])
    again = pd.DataFrame(rows)
    stored = analog[analog.chip == 1].sort_values(["method", "t", "metric"]).value.to_numpy()
    assert np.allclose(again.sort_values(["method", "t", "metric"]).value.to_numpy(), stored, rtol=0, atol=1e-12)


def test_generation_resumes_after_kill_9(gen_run, gpt2_dir, adapters, tmp_path):
    run_dir, cfg = tmp_path / "killed", gen_config(gpt2_dir, adapters, n_chips=3)
    script = ("import sys, json; from analog_peft.montecarlo.engine import *; "
              "run_montecarlo(MonteCarloConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(cfg.to_dict()), str(run_dir)],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not list((run_dir / "chips").glob("chip_*.csv")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 1 <= len(list((run_dir / "chips").glob("chip_*.csv"))) < 3, "the kill should land mid-run"
    df = run_montecarlo(cfg, run_dir, progress=False)
    ref = run_montecarlo(gen_config(gpt2_dir, adapters, n_chips=3), gen_run, progress=False)  # extends the fixture
    pd.testing.assert_frame_equal(df, ref)
    with np.load(run_dir / "outputs.npz") as a, np.load(gen_run / "outputs.npz") as b:
        assert np.array_equal(a["text"], b["text"])


def test_perplexity_monte_carlo_and_its_digital_value(gpt2_dir, adapters, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("The Eagle is a pub near the river.\n\nA cheap coffee shop in the city centre.\nIt is fine.\n")
    cfg = MonteCarloConfig(methods=[MethodSpec("base"), MethodSpec("lora", adapters["lora"])], base_model=gpt2_dir,
                           task="lm", eval_file=str(texts), n_chips=2, times=[1.0, 3.15e7], device_model="pcm",
                           rpu="mapped", batch_size=2)
    df = run_montecarlo(cfg, tmp_path / "ppl", progress=False)
    assert set(df.metric) == {"nll", "perplexity"} and set(df.task) == {"lm:texts.txt"}
    assert len(df[df.chip >= 0]) == 2 * 2 * 2 * 2
    # the digital nll is the token-weighted mean of Hugging Face's own causal-LM loss over the three texts
    from analog_peft.models import load_tokenizer

    model, tok = load_causal_lm(gpt2_dir), load_tokenizer(gpt2_dir)
    total = n = 0.0
    for line in [t for t in texts.read_text().splitlines() if t]:
        ids = torch.tensor([tok(line, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            loss = float(model(input_ids=ids, labels=ids).loss)
        total += loss * (ids.shape[1] - 1)
        n += ids.shape[1] - 1
    digital = df[(df.chip == -1) & (df.method == "base")].set_index("metric").value
    assert digital["nll"] == pytest.approx(total / n, rel=1e-5)
    assert digital["perplexity"] == pytest.approx(np.exp(total / n), rel=1e-5)
    chips = df[(df.chip >= 0) & (df.metric == "nll") & (df.method == "base")]
    assert chips.value.nunique() == len(chips)  # every chip × time is its own draw
    with np.load(tmp_path / "ppl" / "outputs.npz") as z:
        assert z["loss"].shape == (2, 2, 2, 3) and z["tokens"].min() >= 1


@pytest.mark.parametrize("method", ["lora", "grasp", "ia3", "bitfit"])
def test_fused_equals_periphery_on_the_ideal_device(gpt2_dir, adapters, tmp_path, method):
    tables = {}
    for dep in ("periphery", "fused"):
        cfg = MonteCarloConfig(methods=[MethodSpec(method, adapters[method])], base_model=gpt2_dir, task="lm",
                               split="test", max_examples=3, n_chips=1, times=[1.0], device_model=IDEAL, rpu="ideal",
                               deployment=dep, batch_size=8)
        tables[dep] = run_montecarlo(cfg, tmp_path / dep, progress=False)
    a, b = tables["periphery"], tables["fused"]
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=1e-4)
    base = run_montecarlo(MonteCarloConfig(methods=[MethodSpec("base")], base_model=gpt2_dir, task="lm",
                                           split="test", max_examples=3, n_chips=1, times=[1.0], device_model=IDEAL,
                                           rpu="ideal", batch_size=8), tmp_path / "base", progress=False)
    assert not np.allclose(a.value.to_numpy(), base.value.to_numpy(), rtol=1e-4)  # the adapter does something


def test_llama_lm_head_stays_digital_and_perplexity_runs(gpt2_dir, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from analog_peft.models import load_tokenizer

    tok = load_tokenizer(gpt2_dir)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=128,
                         tie_word_embeddings=True, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    tok.save_pretrained(tmp_path / "llama")
    dep = deploy(str(tmp_path / "llama"), None, "periphery", "mapped", causal=True)
    analog = {f.name for f in dep.report.analog}
    assert "lm_head" not in analog and any("mlp" in n for n in analog)
    assert dep.model.lm_head.weight is dep.model.model.embed_tokens.weight  # the tie survives
    cfg = MonteCarloConfig(methods=[MethodSpec("base")], base_model=str(tmp_path / "llama"), task="e2e",
                           split="test", max_examples=4, n_chips=1, times=[1.0], device_model="pcm", metrics=["BLEU"],
                           max_new_tokens=4, num_beams=2)
    df = run_montecarlo(cfg, tmp_path / "gen", progress=False)
    assert set(df.metric) == {"BLEU"} and len(df) == 2


def test_report_shows_worst_chip_outputs(gen_run):
    from analog_peft.montecarlo.report import write_report

    files = write_report(gen_run, out_dir=gen_run / "rep", figures=False, n_boot=200, n_boot_hier=50)
    text = files.markdown.read_text()
    assert "## Example outputs: digital vs the worst chip" in text and "## Per-chip spread" in text


@pytest.mark.parametrize(("change", "message"), [
    ({"metrics": ["BLUE"]}, "unknown for task 'e2e'"),
    ({"task": "lm", "metrics": ["BLEU"]}, "unknown for task 'lm'"),
    ({"base_model": "minilm-l6"}, "decoder-only causal LM"),
    ({"eval_file": "x.txt"}, "--task lm --eval-file"),
    ({"label_column": "y"}, "classification-data options"),
])
def test_bad_decoder_options_are_refused(gpt2_dir, adapters, change, message):
    with pytest.raises(ValueError, match=message):
        gen_config(gpt2_dir, adapters, **change).normalized().validate()


def test_classifier_refuses_decoder_options_and_lm_names_a_missing_file(gpt2_dir, adapters, tmp_path):
    from analog_peft.tasks import DataError

    with pytest.raises(ValueError, match="drop --metric"):
        MonteCarloConfig(methods=[MethodSpec("b")], task="sst2", metrics=["BLEU"]).validate()
    cfg = MonteCarloConfig(methods=[MethodSpec("b")], base_model=gpt2_dir, task="lm", eval_file=str(tmp_path / "no"))
    with pytest.raises(DataError, match="one text per line"):
        run_montecarlo(cfg, tmp_path / "x", progress=False)


def test_cli_runs_a_perplexity_study(gpt2_dir, tmp_path, capsys):
    from analog_peft.cli import main

    texts = tmp_path / "t.txt"
    texts.write_text("There is a pub.\nA restaurant near the centre.\n")
    rc = main(["montecarlo", "--method", "base=", "--base", gpt2_dir, "--task", "lm", "--eval-file", str(texts),
               "--metric", "perplexity", "--chips", "1", "--times", "1s", "--out", str(tmp_path / "cli")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "cli" / "results.csv")
    assert set(df.metric) == {"perplexity"} and len(df) == 2
