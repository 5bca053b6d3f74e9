"""Tokenisation, dynamic-padding collation and deterministic, resumable batch order.

The order of epoch ``e`` under ``seed`` is ``torch.randperm(n, generator=torch.Generator().manual_seed(s))``
with ``s`` derived from ``(seed, e)`` by :func:`epoch_seed`; so ``batches(..., epoch=e, seed=seed, start=i)``
yields exactly the batches ``i, i+1, ...`` of an uninterrupted epoch, which is how a training loop resumes
mid-epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .glue import ClassificationData

Feature = dict[str, list[int] | int | float]

IGNORE_INDEX = -100


def encode_classification(tokenizer: Any, data: ClassificationData, max_length: int = 128) -> list[Feature]:
    """Tokenise texts (truncated to ``max_length``, unpadded) into features with a ``labels`` entry.

    Pair tasks are tokenised as pairs, ``tokenizer(texts, text_pairs)`` (``token_type_ids`` 1 on the second
    text); int labels stay ints (classification), float labels floats (regression).
    """
    if data.text_pairs is None:
        enc = tokenizer(data.texts, truncation=True, max_length=max_length, padding=False)
    else:
        enc = tokenizer(data.texts, data.text_pairs, truncation=True, max_length=max_length, padding=False)
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{**{k: list(enc[k][i]) for k in keys}, "labels": _label(lab)} for i, lab in enumerate(data.labels)]


def _label(value: int | float) -> int | float:
    return float(value) if isinstance(value, float) else int(value)


class FeatureDataset(Dataset):
    """A ``torch.utils.data.Dataset`` over a list of feature dicts."""

    def __init__(self, features: Sequence[Feature]):
        self.features = list(features)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> Feature:
        return self.features[index]


def _pad(
    seqs: Sequence[Sequence[int]], value: int, left: bool = False, multiple_of: int | None = None
) -> torch.Tensor:
    width = max((len(s) for s in seqs), default=0)
    if multiple_of:
        width = -(-width // multiple_of) * multiple_of
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            if left:
                out[i, width - len(s) :] = torch.as_tensor(s, dtype=torch.long)
            else:
                out[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out


def pad_collate(
    features: Sequence[Mapping[str, Any]],
    pad_token_id: int = 0,
    padding_side: str = "right",
    pad_to_multiple_of: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad a list of features to the longest in the batch.

    ``input_ids`` is padded with ``pad_token_id``, ``token_type_ids`` with 0, list-valued ``labels`` with
    -100; an ``attention_mask`` is added; int ``labels`` become a 1-D long tensor, float ``labels`` (regression)
    a 1-D float32 tensor.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}.")
    left = padding_side == "left"
    ids = [f["input_ids"] for f in features]
    batch = {
        "input_ids": _pad(ids, pad_token_id, left, pad_to_multiple_of),
        "attention_mask": _pad([[1] * len(s) for s in ids], 0, left, pad_to_multiple_of),
    }
    if "token_type_ids" in features[0]:
        batch["token_type_ids"] = _pad([f["token_type_ids"] for f in features], 0, left, pad_to_multiple_of)
    if "labels" in features[0]:
        labels = [f["labels"] for f in features]
        if isinstance(labels[0], int):
            batch["labels"] = torch.as_tensor(labels, dtype=torch.long)
        elif isinstance(labels[0], float):
            batch["labels"] = torch.as_tensor(labels, dtype=torch.float32)
        else:
            batch["labels"] = _pad(labels, IGNORE_INDEX, left, pad_to_multiple_of)
    return batch


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed 63-bit seed for ``(seed, epoch)`` (``numpy.random.SeedSequence``)."""
    return int(np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0]) >> 1


def batch_indices(
    n: int, batch_size: int, *, epoch: int = 0, seed: int = 0, shuffle: bool = True, drop_last: bool = False
) -> list[list[int]]:
    """Example indices of every batch of one epoch, in order (deterministic in ``(seed, epoch)``)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch))).tolist()
    else:
        order = list(range(n))
    stop = n - n % batch_size if drop_last else n
    return [order[i : i + batch_size] for i in range(0, stop, batch_size)]


def num_batches(n: int, batch_size: int, drop_last: bool = False) -> int:
    """Number of batches of one epoch."""
    return n // batch_size if drop_last else -(-n // batch_size)


class ResumableBatchSampler(Sampler[list[int]]):
    """Batch sampler for ``DataLoader(batch_sampler=...)``; ``set_epoch(e, start=i)`` resumes at batch i."""

    def __init__(
        self, n: int, batch_size: int, *, seed: int = 0, shuffle: bool = True, drop_last: bool = False
    ):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def __iter__(self) -> Iterator[list[int]]:
        idx = batch_indices(
            self.n,
            self.batch_size,
            epoch=self.epoch,
            seed=self.seed,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
        )
        yield from idx[self.start :]

    def __len__(self) -> int:
        return max(0, num_batches(self.n, self.batch_size, self.drop_last) - self.start)


def batches(
    features: Sequence[Feature],
    batch_size: int,
    *,
    epoch: int = 0,
    seed: int = 0,
    start: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    collate_fn: Callable[[list[Feature]], dict[str, torch.Tensor]] | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield collated batches ``start, start+1, ...`` of epoch ``epoch`` (the tail of a full epoch)."""
    collate = collate_fn or pad_collate
    for idx in batch_indices(
        len(features), batch_size, epoch=epoch, seed=seed, shuffle=shuffle, drop_last=drop_last
    )[start:]:
        yield collate([features[i] for i in idx])
