"""PARA: prompt-dependent vectors (encoder, masked pooling) and decoder generation with/without KV cache."""

from __future__ import annotations

import pytest
import torch
from test_methods_helpers import load_minilm, minilm_dir, perturb, tiny_gpt2, tiny_llama

from analog_peft.methods import AdapterError, ParaConfig, attach


@pytest.fixture(scope="module")
def encoder():
    adapted = attach(load_minilm(), ParaConfig()).eval()
    perturb(adapted, 0.1)
    return adapted


def _tokens(sentences):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_dir())(sentences, padding=True, return_tensors="pt")


def test_different_prompts_give_different_vectors(encoder):
    batch = _tokens(["a gorgeous, witty, seductive movie.", "the plot is nothing but boilerplate clichés"])
    with torch.no_grad():
        encoder(**batch)
    vectors = encoder.prompt_vectors()
    assert len(vectors) == 6
    for v in vectors.values():
        assert v.shape == (2, 384 + 384 + 1536)
        assert (v[0] - v[1]).abs().max() > 1e-3


def test_pooling_ignores_padding(encoder):
    short = "a gorgeous movie."
    alone = _tokens([short])
    padded = _tokens([short, "a much longer sentence that forces plenty of padding onto the first one"])
    with torch.no_grad():
        out_alone = encoder(**alone).logits
        first = {b: v[0] for b, v in encoder.prompt_vectors().items()}
        out_padded = encoder(**padded).logits
    for b, v in encoder.prompt_vectors().items():
        assert torch.allclose(v[0], first[b], atol=1e-5)
    assert torch.allclose(out_alone[0], out_padded[0], atol=1e-4)


@pytest.mark.parametrize("make", [tiny_gpt2, tiny_llama], ids=["gpt2", "llama"])
def test_generation_same_with_and_without_kv_cache(make):
    adapted = attach(make(), ParaConfig()).eval()
    perturb(adapted, 0.5, seed=3)
    ids = torch.randint(3, 128, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    kwargs = {"max_new_tokens": 8, "do_sample": False, "attention_mask": mask, "pad_token_id": 0,
              "output_scores": True, "return_dict_in_generate": True}
    cached = adapted.generate(ids, use_cache=True, **kwargs)
    from_cache = adapted.prompt_vectors()
    uncached = adapted.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, b in zip(cached.scores, uncached.scores, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    with torch.no_grad():
        adapted(input_ids=ids, attention_mask=mask)  # the prompt alone
    for b, v in adapted.prompt_vectors().items():
        assert torch.allclose(v, from_cache[b], atol=1e-6)  # the vectors came from the prompt (prefill)
    with torch.no_grad():
        adapted_logits = adapted(input_ids=ids, attention_mask=mask).logits
        with adapted.disabled():
            base_logits = adapted(input_ids=ids, attention_mask=mask).logits
    assert (adapted_logits - base_logits).abs().max() > 1e-3  # the adapter is active


def test_gpt2_scales_only_q_and_v_slices():
    adapted = attach(tiny_gpt2(), ParaConfig())
    c_attn = adapted.adapter_layers()["transformer.h.0.attn.c_attn"]
    assert c_attn.slices == [(0, 64), (128, 192)]
    n = 64 + 64 + 256
    assert adapted.trainable_summary()["adapter"] == 2 * (64 * 12 + 12 + 12 * n + n)


def test_para_needs_block_roles():
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    with pytest.raises(AdapterError, match="use target_roles instead of target_modules"):
        attach(bert, ParaConfig(target_modules=["pooler.dense"]))
