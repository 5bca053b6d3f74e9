"""Evaluators of causal language models on chips: E2E generation and teacher-forced perplexity.

**Generation** (``task = "e2e"``): the MRs of the split (``max_examples`` seeded MRs) are sorted by prompt
length and batched (``batch_size``), each batch left-padded (:func:`~analog_peft.tasks.e2e.prompt_batch`,
prompts cut to their last ``max_length`` tokens), prefilled once and decoded with the KV cache by
``model.generate`` — greedy (``num_beams = 1``) or beam search, ``max_new_tokens`` at most, no sampling — so
a chip's generations depend only on its seed, the time and the batch (per-MVM forward noise, if the preset
has any, is seeded per batch). Metrics: :func:`~analog_peft.tasks.metrics.e2e_metrics` against all references
of each MR (``metrics``: a subset of BLEU, NIST, METEOR, ROUGE_L, CIDEr; default all five).

**Perplexity** (``task = "lm"``): teacher-forced negative log-likelihood per token, summed over the scored
tokens of all texts: ``nll`` (nats per token) and ``perplexity = exp(nll)``. The texts are the lines of
``eval_file`` (UTF-8, one text per line, empty lines skipped; every token after the first is scored) or,
without it, the E2E references of the split: every (MR, reference) pair, formatted as in training
(``mr\\n`` + `` ref`` + eos) and scored on the reference tokens and eos only (the conditional perplexity of
the references, the quantity E2E adapters are trained to lower).

Non-finite logits raise :class:`~analog_peft.finite.NonFiniteError` naming the method, chip, time and batch.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from analog_peft.finite import check_finite_logits
from analog_peft.tasks import E2E_METRICS, IGNORE_INDEX, DataError, load_e2e, pad_collate, prompt_batch
from analog_peft.tasks.batching import Feature
from analog_peft.tasks.e2e import decode_generations, encode_lm_pair, eos_token_id, format_prompt, pad_token_id
from analog_peft.tasks.glue import subsample_indices

from .evaluators import Arrays
from .files import atomic_write

if TYPE_CHECKING:
    from analog_peft.chips import ChipProgrammer

    from .engine import MonteCarloConfig

LM_METRICS = ("nll", "perplexity")
#: separator of an MR's references in ``examples.csv``
REF_SEPARATOR = "\n"

__all__ = ["LM_METRICS", "GenerationEvaluator", "PerplexityEvaluator", "generate_batch", "read_text_file"]


def _seeded(chips: ChipProgrammer | None, i: int) -> Any:
    from contextlib import nullcontext

    return nullcontext() if chips is None else chips.seeded_forward("batch", i)


def _sha(parts: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _record(name: str, path: str | None, sha256: str, n: int) -> dict[str, Any]:
    return {"name": name, "file": path, "sha256": sha256, "examples": n}


class _FiniteLogits:
    """A ``LogitsProcessor`` that refuses NaN/inf scores at every decoding step."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        check_finite_logits(scores, self.where)
        return scores


@torch.no_grad()
def generate_batch(model: nn.Module, batch: dict[str, torch.Tensor], tokenizer: Any, *, max_new_tokens: int,
                   num_beams: int = 1, use_cache: bool = True, where: str = "generation") -> torch.Tensor:
    """Generated token ids (prompt columns included) of one left-padded batch: greedy or beam search."""
    from transformers import LogitsProcessorList

    device = next(model.parameters()).device
    return model.generate(
        input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
        max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False, early_stopping=num_beams > 1,
        eos_token_id=eos_token_id(tokenizer), pad_token_id=pad_token_id(tokenizer), use_cache=use_cache,
        logits_processor=LogitsProcessorList([_FiniteLogits(where)]), temperature=None, top_p=None, top_k=None,
    ).cpu()


@dataclass
class GenerationEvaluator:
    """E2E generation on chips (see the module docstring)."""

    tokenizer: Any
    batches: list[dict[str, torch.Tensor]]
    mrs: list[str]  # in batch order
    refs: list[list[str]]
    index: list[int]  # MR position in the loaded split, per example
    sha256: str
    record: dict[str, Any] | None
    metrics: tuple[str, ...] = E2E_METRICS
    max_new_tokens: int = 64
    num_beams: int = 1
    kind: str = "generation"

    @classmethod
    def from_config(cls, config: MonteCarloConfig) -> GenerationEvaluator:
        from analog_peft.models import load_tokenizer

        examples = load_e2e(config.split, data_dir=config.data_dir, max_examples=config.max_examples,
                            seed=config.subset_seed)
        tok = load_tokenizer(config.base_model)
        lengths = [len(tok(format_prompt(e.mr), add_special_tokens=False)["input_ids"]) for e in examples]
        order = sorted(range(len(examples)), key=lambda i: lengths[i])  # similar lengths batch together
        mrs = [examples[i].mr for i in order]
        batches = [prompt_batch(tok, mrs[s : s + config.batch_size], config.max_length)
                   for s in range(0, len(mrs), config.batch_size)]
        digest = _sha([e.mr + "\t" + "\t".join(e.refs) for e in examples])
        return cls(tok, batches, mrs, [examples[i].refs for i in order], order, digest,
                   _record("e2e", None, digest, len(examples)), tuple(config.metrics or E2E_METRICS),
                   config.max_new_tokens, config.num_beams)

    @property
    def size(self) -> int:
        return len(self.mrs)

    def generate(self, model: nn.Module, chips: ChipProgrammer | None = None, where: str = "generation",
                 use_cache: bool = True) -> tuple[list[str], np.ndarray]:
        """The generations (batch order) and their lengths in tokens."""
        model.eval()
        texts: list[str] = []
        lengths: list[int] = []
        for i, batch in enumerate(self.batches):
            with _seeded(chips, i):
                out = generate_batch(model, batch, self.tokenizer, max_new_tokens=self.max_new_tokens,
                                     num_beams=self.num_beams, use_cache=use_cache, where=f"{where}, batch {i}")
            width = batch["input_ids"].shape[1]
            texts.extend(decode_generations(self.tokenizer, out, width))
            lengths.extend(_generated_lengths(out[:, width:], eos_token_id(self.tokenizer)))
        return texts, np.asarray(lengths, dtype=np.int16)

    def evaluate(self, model: nn.Module, chips: ChipProgrammer | None = None,
                 where: str = "evaluation") -> tuple[dict[str, float], Arrays]:
        from analog_peft.tasks import e2e_metrics

        texts, lengths = self.generate(model, chips, where)
        metrics = e2e_metrics(texts, self.refs, metrics=self.metrics)
        return metrics, {"text": np.asarray(texts, dtype=str), "length": lengths}

    def write_examples(self, out: Path) -> None:
        table = pd.DataFrame({"example": np.arange(self.size), "index": self.index, "text": self.mrs,
                              "references": [REF_SEPARATOR.join(r) for r in self.refs]})
        atomic_write(out / "examples.csv", table.to_csv(index=False))


def _generated_lengths(new_tokens: torch.Tensor, eos: int) -> list[int]:
    """Tokens generated before the first eos (eos included) of each row."""
    lengths = []
    for row in new_tokens.tolist():
        lengths.append(row.index(eos) + 1 if eos in row else len(row))
    return lengths


def read_text_file(path: str | Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file (one text per line); a clear error when there are none."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"--eval-file {file}: no such file; give a UTF-8 text file with one text per line")
    try:
        lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise DataError(f"--eval-file {file} is not UTF-8 text ({err}); save it as UTF-8, one text per line") \
            from None
    texts = [line for line in lines if line]
    if not texts:
        raise DataError(f"--eval-file {file} has no text (only empty lines); put one text per line")
    return texts


def _text_feature(tokenizer: Any, text: str, max_length: int) -> Feature:
    """A plain text: every token after the first is scored (a one-token text scores nothing)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])[:max_length]
    return {"input_ids": ids, "labels": ids}


@dataclass
class PerplexityEvaluator:
    """Teacher-forced perplexity of a text set on chips (see the module docstring)."""

    batches: list[dict[str, torch.Tensor]]
    texts: list[str]  # in batch order
    index: list[int]
    sha256: str
    record: dict[str, Any] | None
    metrics: tuple[str, ...] = LM_METRICS
    kind: str = "lm"

    @classmethod
    def from_config(cls, config: MonteCarloConfig) -> PerplexityEvaluator:
        from analog_peft.models import load_tokenizer

        tok = load_tokenizer(config.base_model)
        if config.eval_file:
            lines = read_text_file(config.eval_file)
            keep = subsample_indices(len(lines), config.max_examples, 0)
            texts = [lines[i] for i in keep]
            feats = [_text_feature(tok, t, config.max_length) for t in texts]
            name, path = config.data_name or Path(config.eval_file).name, config.eval_file
        else:
            examples = load_e2e(config.split, data_dir=config.data_dir, max_examples=config.max_examples,
                            seed=config.subset_seed)
            pairs = [(e.mr, r) for e in examples for r in e.refs]
            texts = [format_prompt(mr) + " " + ref for mr, ref in pairs]
            feats = [encode_lm_pair(tok, mr, ref, config.max_length) for mr, ref in pairs]
            name, path = "e2e references", None
        order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
        pad = pad_token_id(tok)
        batches = [pad_collate([feats[i] for i in order[s : s + config.batch_size]], pad_token_id=pad)
                   for s in range(0, len(order), config.batch_size)]
        digest = _sha(texts)
        return cls(batches, [texts[i] for i in order], order, digest, _record(name, path, digest, len(texts)),
                   tuple(config.metrics or LM_METRICS))

    @property
    def size(self) -> int:
        return len(self.texts)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, chips: ChipProgrammer | None = None,
                 where: str = "evaluation") -> tuple[dict[str, float], Arrays]:
        model.eval()
        device = next(model.parameters()).device
        sums, counts = [], []
        for i, batch in enumerate(self.batches):
            labels = batch["labels"].to(device)
            with _seeded(chips, i):
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits
            check_finite_logits(logits, f"{where}, batch {i}")
            s, n = token_nll(logits, labels)
            sums.append(s.cpu())
            counts.append(n.cpu())
        total, tokens = torch.cat(sums).double(), torch.cat(counts)
        nll = float(total.sum() / max(int(tokens.sum()), 1))
        per_text = (total / tokens.clamp_min(1)).float().numpy()
        values = {"nll": nll, "perplexity": float(np.exp(nll))}
        return ({m: values[m] for m in self.metrics},
                {"loss": per_text, "tokens": tokens.numpy().astype(np.int32)})

    def write_examples(self, out: Path) -> None:
        table = pd.DataFrame({"example": np.arange(self.size), "index": self.index, "text": self.texts})
        atomic_write(out / "examples.csv", table.to_csv(index=False))


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the summed NLL (nats) of the next-token predictions of its labelled tokens, and their count."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(shift_logits.transpose(1, 2), shift_labels.clamp_min(0),
                                            reduction="none")
    return (nll * mask).sum(1), mask.sum(1)


def assemble_outputs(out: Path, chips: Sequence[int]) -> bool:
    """``outputs.npz``: every chip's per-example arrays stacked as ``(methods, chips, times, examples)``, with
    ``chips``, ``methods``, ``times`` and the digital ones as ``digital_<name>``; removed when a chip has none."""
    from . import examples as ex

    target = out / "outputs.npz"
    paths = [ex.chip_npz_path(out, c) for c in chips]
    if not paths or not all(p.is_file() for p in paths):
        target.unlink(missing_ok=True)
        return False
    parts = [dict(np.load(p)) for p in paths]
    keys = [k for k in parts[0] if k not in ("methods", "times")]
    arrays = {k: np.stack([p[k] for p in parts], axis=1) for k in keys}
    arrays.update(chips=np.asarray(chips, dtype=np.int64), methods=parts[0]["methods"], times=parts[0]["times"])
    if (out / ex.DIGITAL_FILE).is_file():
        arrays.update({f"digital_{k}": v for k, v in np.load(out / ex.DIGITAL_FILE).items()})
    atomic_write(target, ex.encode_arrays(**arrays))
    return True


def manifest_kind(out: Path) -> str | None:
    """The kind of the run in ``out`` (``generation``, ``lm``) when it is a decoder run, else None."""
    from .evaluators import is_decoder_task, task_kind

    path = out / "manifest.json"
    if not path.is_file():
        return None
    task = json.loads(path.read_text()).get("task", "")
    return task_kind(task) if is_decoder_task(task) else None
