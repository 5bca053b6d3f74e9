"""Adapter methods on MiniLM-L6 (real weights, real SST-2 sentences): identity at init, training, counts,
fusion, save/load, errors."""

from __future__ import annotations

import json

import pytest
import torch
from test_methods_helpers import fresh, load_minilm, perturb, sst2_batch, tiny_gpt2, tiny_llama

from analog_peft.methods import (
    METHODS,
    AdapterError,
    AdapterFileError,
    BitFitConfig,
    FullConfig,
    GraspConfig,
    HeadConfig,
    IA3Config,
    LoraConfig,
    ParaConfig,
    StochGraspConfig,
    attach,
    config_from_dict,
    load_adapter,
    merge_adapter,
)

CONFIGS = {
    "grasp": lambda: GraspConfig(k=16),
    "stochgrasp": lambda: StochGraspConfig(k=16, sigma_init=0.02, sigma_target=0.02),
    "lora": lambda: LoraConfig(r=4),
    "bitfit": lambda: BitFitConfig(),
    "ia3": lambda: IA3Config(),
    "para": lambda: ParaConfig(),
    "full": lambda: FullConfig(),
    "head": lambda: HeadConfig(),
}
MERGEABLE = ["grasp", "stochgrasp", "lora", "ia3"]
L, D, F = 6, 384, 1536  # MiniLM-L6: blocks, hidden, FFN width


@pytest.fixture(scope="module")
def base():
    return load_minilm()


@pytest.fixture(scope="module")
def batch():
    return sst2_batch(8)


def inputs(batch):
    return {k: v for k, v in batch.items() if k != "labels"}


def test_methods_registry_complete():
    assert set(METHODS) == set(CONFIGS)
    for name, make in CONFIGS.items():
        cfg = make()
        data = json.loads(cfg.to_json())
        assert data["method"] == name
        assert config_from_dict(data) == cfg


@pytest.mark.parametrize("method", list(CONFIGS))
def test_identity_at_init(base, batch, method):
    model = fresh(base)
    with torch.no_grad():
        ref = model(**inputs(batch)).logits
    adapted = attach(model, CONFIGS[method]()).eval()
    with torch.no_grad():
        out = adapted(**inputs(batch)).logits
    assert (out - ref).abs().max().item() <= 1e-5


SLOW_FULL = [pytest.param("full", marks=pytest.mark.slow) if m == "full" else m for m in CONFIGS]


@pytest.mark.parametrize("method", SLOW_FULL)
def test_training_lowers_loss_and_changes_only_adapter(base, batch, method):
    model = fresh(base)
    adapted = attach(model, CONFIGS[method]())
    before = {n: p.detach().clone() for n, p in adapted.named_parameters()}
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    lr = {"full": 3e-5, "lora": 3e-3, "bitfit": 3e-3}.get(method, 1e-2)
    opt = torch.optim.Adam(adapted.param_groups(lr))

    def loss_eval():
        adapted.eval()
        with torch.no_grad():
            return adapted(**batch).loss.item()

    start = loss_eval()
    torch.manual_seed(0)
    for _ in range(4):
        adapted.train()
        loss = adapted(**batch).loss + adapted.regularization_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = loss_eval()
    assert end < start - 0.01, (start, end)
    changed = {n for n, p in adapted.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed, "nothing trained"
    assert changed <= trainable
    adapter_ids = {id(p) for p in adapted.adapter_parameters() + adapted.head_parameters()}
    assert {id(p) for p in adapted.parameters() if p.requires_grad} == adapter_ids
    if method != "full":
        assert any(n.startswith("model.classifier.") for n in changed)


def test_parameter_counts(base):
    counts = {m: attach(fresh(base), CONFIGS[m]()).trainable_summary() for m in CONFIGS}
    head = 2 * D + 2
    linears = L * 6
    assert counts["grasp"]["adapter"] == linears * 2 * 16
    assert counts["stochgrasp"]["adapter"] == linears * 4 * 16
    assert counts["lora"]["adapter"] == L * 2 * 4 * (D + D)  # Q and V, r·(d_in + d_out)
    assert counts["ia3"]["adapter"] == L * (D + D + F)  # K, V, FFN activation
    n = D + D + F  # PARA: Q, V, FFN activation per block
    assert counts["para"]["adapter"] == L * (D * 12 + 12 + 12 * n + n)
    # BitFit: every bias: 6 linears + 2 LayerNorms per block, embedding LayerNorm, pooler
    assert counts["bitfit"]["adapter"] == L * (4 * D + F + D + 2 * D) + D + D
    total_base = counts["bitfit"]["total"]
    assert counts["full"]["adapter"] == total_base - head
    for s in counts.values():
        assert s["head"] == head
        assert s["trainable"] == s["adapter"] + s["head"]
        assert s["percent"] == pytest.approx(100 * s["trainable"] / s["total"])


@pytest.mark.parametrize("method", MERGEABLE)
def test_merge_equals_unmerged(base, batch, method):
    adapted = attach(fresh(base), CONFIGS[method]()).eval()
    perturb(adapted, 0.1)
    with torch.no_grad():
        ref = adapted(**inputs(batch)).logits
        merged = merge_adapter(adapted)
        out = merged(**inputs(batch)).logits
    assert (out - ref).abs().max().item() <= 1e-4
    assert not any("base_layer" in n for n, _ in merged.named_modules())
    assert (ref - fresh(base)(**inputs(batch)).logits).abs().max() > 1e-3  # the adapter did something


def test_para_cannot_merge(base):
    adapted = attach(fresh(base), ParaConfig())
    with pytest.raises(AdapterError, match="cannot be merged"):
        merge_adapter(adapted)


@pytest.mark.parametrize("method", SLOW_FULL)
def test_save_load_roundtrip(base, batch, method, tmp_path):
    adapted = attach(fresh(base), CONFIGS[method]()).eval()
    perturb(adapted, 0.05)
    with torch.no_grad():
        ref = adapted(**inputs(batch)).logits
    adapted.save_adapter(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter.safetensors", "adapter_config.json", "conversion.json"]
    again = load_adapter(fresh(base), tmp_path).eval()
    with torch.no_grad():
        out = again(**inputs(batch)).logits
    assert torch.equal(out, ref)


def test_disabled_gives_base_model(base, batch):
    adapted = attach(fresh(base), GraspConfig(k=8)).eval()
    perturb(adapted, 0.2)
    head = fresh(base)
    head.classifier.load_state_dict(adapted.model.classifier.state_dict())
    with torch.no_grad(), adapted.disabled():
        off = adapted(**inputs(batch)).logits
    with torch.no_grad():
        on = adapted(**inputs(batch)).logits
    assert torch.allclose(off, head(**inputs(batch)).logits, atol=1e-6)
    assert (on - off).abs().max() > 1e-3


def test_regex_and_suffix_targets(base):
    a = attach(fresh(base), LoraConfig(target_modules=["re:.*attention\\.self\\.(query|value)$"]))
    b = attach(fresh(base), LoraConfig(target_modules=["query", "value"]))
    c = attach(fresh(base), LoraConfig())
    assert set(a.adapter_layers()) == set(b.adapter_layers()) == set(c.adapter_layers())
    assert len(a.adapter_layers()) == 2 * L
    g = attach(fresh(base), GraspConfig(k=4, target_roles=["ffn_up"], exclude_modules=["re:.*layer\\.0\\..*"]))
    assert len(g.adapter_layers()) == L - 1


def test_gpt2_conv1d_and_llama_targets():
    gpt2 = tiny_gpt2()
    ids = torch.randint(3, 128, (2, 10))
    with torch.no_grad():
        ref = gpt2(ids).logits
    adapted = attach(gpt2, GraspConfig(k=8)).eval()
    assert len(adapted.adapter_layers()) == 2 * 4
    assert adapted.trainable_summary()["head"] == 0  # tied LM head: not trained by default
    perturb(adapted, 0.1)
    with torch.no_grad():
        out = adapted(ids).logits
        merged = merge_adapter(adapted)(ids).logits
    assert (out - ref).abs().max() > 1e-3 and (merged - out).abs().max() <= 1e-4
    lora = attach(tiny_gpt2(), LoraConfig(r=2))
    assert list(lora.adapter_layers()) == [f"transformer.h.{i}.attn.c_attn" for i in range(2)]
    ia3 = attach(tiny_gpt2(), IA3Config())
    assert ia3.trainable_summary()["adapter"] == 2 * (64 + 64 + 256)  # K and V slices of c_attn + FFN
    llama = tiny_llama()
    with torch.no_grad():
        ref = llama(ids).logits
    adapted = attach(llama, IA3Config()).eval()
    assert adapted.trainable_summary()["adapter"] == 2 * (32 + 32 + 128)  # GQA: K, V are 2 heads × 16
    perturb(adapted, 0.1)
    with torch.no_grad():
        out = adapted(ids).logits
        assert (out - ref).abs().max() > 1e-3
        assert (merge_adapter(adapted)(ids).logits - out).abs().max() <= 1e-4


def test_grasp_merge_creates_bias_on_biasless_layer():
    llama = tiny_llama()
    ids = torch.randint(3, 128, (2, 7))
    adapted = attach(llama, GraspConfig(k=4, target_roles=["o"])).eval()
    perturb(adapted, 0.2)
    with torch.no_grad():
        out = adapted(ids).logits
        merged = merge_adapter(adapted)
        assert merged.model.layers[0].self_attn.o_proj.bias is not None
        assert (merged(ids).logits - out).abs().max() <= 1e-4


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, -3])
def test_k_not_positive(k):
    with pytest.raises(AdapterError, match="positive integer"):
        GraspConfig(k=k)


def test_k_larger_than_width(base):
    with pytest.raises(AdapterError, match=r"k=500 groups exceeds the input width D=384 .*choose k <= 384"):
        attach(fresh(base), GraspConfig(k=500))


def test_unknown_target_lists_valid_names(base):
    with pytest.raises(AdapterError, match=r"'quer' matches no adaptable module.*Valid names include.*query"):
        attach(fresh(base), LoraConfig(target_modules=["quer"]))
    with pytest.raises(AdapterError, match=r"unknown role 'attn'.*roles are"):
        attach(fresh(base), LoraConfig(target_roles=["attn"]))


def test_double_attach_refused(base):
    model = fresh(base)
    attach(model, GraspConfig(k=4))
    with pytest.raises(AdapterError, match="already has an adapter"):
        attach(model, LoraConfig())


def test_load_on_wrong_base(base, tmp_path):
    attach(fresh(base), GraspConfig(k=4)).save_adapter(tmp_path)
    with pytest.raises(AdapterFileError, match=r"made for model_type='bert'.*this model is 'gpt2'"):
        load_adapter(tiny_gpt2(), tmp_path)
    # same model type, different size: the fingerprint catches it before anything is injected
    from transformers import BertConfig, BertForSequenceClassification

    small = BertForSequenceClassification(
        BertConfig(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, intermediate_size=128)
    )
    with pytest.raises(AdapterFileError, match=r"shape \[in, out\]=\[384, 384\].*\[64, 64\]"):
        load_adapter(small, tmp_path)
    assert not any("base_layer" in n for n, _ in small.named_modules())


def test_corrupt_or_mismatched_files(base, tmp_path):
    adapted = attach(fresh(base), GraspConfig(k=4))
    adapted.save_adapter(tmp_path)
    weights = tmp_path / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-40])
    with pytest.raises(AdapterFileError, match=r"adapter\.safetensors is corrupt or truncated"):
        load_adapter(fresh(base), tmp_path)
    adapted.save_adapter(tmp_path)
    cfg_path = tmp_path / "adapter_config.json"
    data = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({**data, "method": "dora"}))
    with pytest.raises(AdapterError, match=r"unknown adapter method 'dora' in .*adapter_config\.json"):
        load_adapter(fresh(base), tmp_path)
    cfg_path.write_text(json.dumps({**data, "kk": 3}))
    with pytest.raises(AdapterError, match=r"unknown field\(s\) \['kk'\].*adapter_config\.json"):
        load_adapter(fresh(base), tmp_path)
    cfg_path.write_text(json.dumps({**data, "k": 8}))  # config says 8 groups, tensors hold 4
    with pytest.raises(AdapterFileError, match=r"tensor .*gamma' has shape \[4\], expected \[8\]"):
        load_adapter(fresh(base), tmp_path)
    cfg_path.write_text("{not json")
    with pytest.raises(AdapterFileError, match=r"adapter_config\.json is not valid JSON"):
        load_adapter(fresh(base), tmp_path)
    cfg_path.write_text(json.dumps({**LoraConfig().to_dict(), "fingerprint": data["fingerprint"]}))
    with pytest.raises(AdapterFileError, match="targets differ"):
        load_adapter(fresh(base), tmp_path)
