"""E2E NLG data: meaning representations (MRs) with several human references, and causal-LM formatting.

Prompt format (documented contract, used for training and generation)::

    prompt = f"{mr}\\n"                 # e.g. "name[Alimentum], area[city centre]\\n"
    target = f" {ref}" + <eos token>    # loss only on these tokens; prompt tokens get label -100

Prompt and target are tokenised separately (no special tokens) and concatenated, so the label mask falls
exactly on the prompt/target boundary. Training batches are right-padded; generation prompts are left-padded
so that all prompts end at the last column.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .batching import IGNORE_INDEX, Feature, pad_collate
from .glue import subsample_indices
from .paths import missing_file_error, resolve_data_dir
from .registry import canonical_split, get_task

PROMPT_TEMPLATE = "{mr}\n"
TARGET_TEMPLATE = " {ref}"


@dataclass
class E2EExample:
    """One meaning representation and all its references."""

    mr: str
    refs: list[str]


def _clean(text: str) -> str:
    # Encoding glitches fixed the same way as the official e2e-metrics reader.
    for bad, good in (("Ł", "£"), ("Â£", "£"), ("Ã©", "é"), ("ã©", "é"), ("\ufeff", "")):
        text = text.replace(bad, good)
    return text.strip()


def load_e2e(
    split: str,
    data_dir: str | os.PathLike[str] | None = None,
    max_examples: int | None = None,
    seed: int = 0,
) -> list[E2EExample]:
    """Load an E2E csv (columns ``mr,ref``) grouped by MR, in order of first appearance.

    ``split`` is ``"dev"`` (devset.csv), ``"test"`` (testset_w_refs.csv) or ``"train"`` (trainset.csv, not
    in the shared data: point ``data_dir`` at a full copy). ``max_examples`` keeps a deterministic subsample
    of MRs (see :func:`~analog_peft.tasks.glue.subsample_indices`).
    """
    spec = get_task("e2e")
    split = canonical_split(split)
    if split not in spec.split_files:
        raise ValueError(f"E2E has no split {split!r}; splits: {', '.join(spec.split_files)}.")
    fname = spec.split_files[split]
    root = resolve_data_dir(data_dir)
    candidates = [root / fname, root / spec.subdir / fname]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise missing_file_error(f"the {split!r} split of E2E ({fname})", candidates)
    grouped: dict[str, list[str]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = [c.strip().lower() for c in reader.fieldnames or []]
        if "mr" not in fields or "ref" not in fields:
            raise ValueError(f"{path}: expected columns 'mr,ref', found {reader.fieldnames}.")
        reader.fieldnames = fields
        for row in reader:
            grouped.setdefault(_clean(row["mr"]), []).append(_clean(row["ref"] or ""))
    if not grouped:
        raise ValueError(f"{path}: the split is empty (no data rows).")
    examples = [E2EExample(mr, refs) for mr, refs in grouped.items()]
    return [examples[i] for i in subsample_indices(len(examples), max_examples, seed)]


def training_pairs(examples: Sequence[E2EExample]) -> list[tuple[str, str]]:
    """One ``(mr, ref)`` pair per reference."""
    return [(ex.mr, ref) for ex in examples for ref in ex.refs]


def format_prompt(mr: str) -> str:
    """The prompt text of an MR (see module docstring)."""
    return PROMPT_TEMPLATE.format(mr=mr)


def eos_token_id(tokenizer: Any) -> int:
    """The id that ends a target: ``eos_token_id``, else ``sep_token_id`` (BERT-style tokenizers)."""
    for attr in ("eos_token_id", "sep_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    raise ValueError("The tokenizer has neither an eos nor a sep token; set tokenizer.eos_token first.")


def pad_token_id(tokenizer: Any) -> int:
    """``pad_token_id`` if set, else the eos id (GPT-2 style tokenizers have no pad token)."""
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else eos_token_id(tokenizer)


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_lm_pair(tokenizer: Any, mr: str, ref: str, max_length: int = 128) -> Feature:
    """Tokenise one (mr, ref) pair: ``input_ids = prompt + target + [eos]``, ``labels`` -100 on the prompt.

    Sequences longer than ``max_length`` are cut at the end (the prompt is kept whole when it fits).
    """
    prompt = _ids(tokenizer, format_prompt(mr))
    target = _ids(tokenizer, TARGET_TEMPLATE.format(ref=ref)) + [eos_token_id(tokenizer)]
    input_ids = (prompt + target)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + target)[:max_length]
    return {"input_ids": input_ids, "labels": labels}


def encode_lm_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int = 128) -> list[Feature]:
    """:func:`encode_lm_pair` over a list of pairs (e.g. from :func:`training_pairs`)."""
    return [encode_lm_pair(tokenizer, mr, ref, max_length) for mr, ref in pairs]


def lm_collate(features: Sequence[Feature], tokenizer: Any) -> dict[str, torch.Tensor]:
    """Right-pad training features; padded label positions are -100."""
    return pad_collate(features, pad_token_id=pad_token_id(tokenizer), padding_side="right")


def prompt_batch(
    tokenizer: Any, mrs: Sequence[str], max_length: int | None = None
) -> dict[str, torch.Tensor]:
    """Left-padded ``input_ids``/``attention_mask`` of the prompts of ``mrs``, ready for ``model.generate``.

    With ``max_length``, over-long prompts keep their last ``max_length`` tokens.
    """
    ids = [_ids(tokenizer, format_prompt(mr)) for mr in mrs]
    if max_length is not None:
        ids = [s[-max_length:] for s in ids]
    return pad_collate(
        [{"input_ids": s} for s in ids], pad_token_id=pad_token_id(tokenizer), padding_side="left"
    )


def decode_generations(tokenizer: Any, generated: torch.Tensor, prompt_length: int) -> list[str]:
    """Text generated after a left-padded prompt batch of width ``prompt_length``: cut at eos and the first
    newline, stripped."""
    eos = eos_token_id(tokenizer)
    texts = []
    for row in generated[:, prompt_length:].tolist():
        if eos in row:
            row = row[: row.index(eos)]
        text = tokenizer.decode(row, skip_special_tokens=True)
        texts.append(text.split("\n", 1)[0].strip())
    return texts
