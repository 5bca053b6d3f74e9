"""Batched greedy / beam-search generation for E2E-style prompt → text tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


@torch.no_grad()
def generate_texts(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    num_beams: int = 1,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    max_prompt_length: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[str]:
    """Generate a continuation of each E2E meaning representation (greedy when ``num_beams == 1``)."""
    from tqdm.auto import tqdm

    from analog_peft.tasks import decode_generations, prompt_batch
    from analog_peft.tasks.e2e import eos_token_id, pad_token_id

    model.eval()
    out: list[str] = []
    for i in tqdm(range(0, len(prompts), batch_size), desc="generate", disable=not progress, leave=False):
        batch = prompt_batch(tokenizer, prompts[i : i + batch_size], max_prompt_length)
        ids = batch["input_ids"].to(device)
        gen = model.generate(
            input_ids=ids,
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            early_stopping=num_beams > 1,
            eos_token_id=eos_token_id(tokenizer),
            pad_token_id=pad_token_id(tokenizer),
        )
        out.extend(decode_generations(tokenizer, gen.cpu(), ids.shape[1]))
    return out
