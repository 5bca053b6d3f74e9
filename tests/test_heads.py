"""Classification heads: pooling that fits the checkpoint, a pooler that trains when used, heads recorded."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2ForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from analog_peft.deploy import adapter_pooling, deploy
from analog_peft.heads import HeadError, head_module_names, head_record
from analog_peft.methods import AdapterFileError, GraspConfig, HeadConfig, attach, load_adapter
from analog_peft.models import load_classifier, load_tokenizer

SENTENCES = ["a gripping , beautifully shot film", "dull"]


def _batch(tok, texts=SENTENCES):
    return dict(tok(texts, padding=True, return_tensors="pt"))


def _classifier_input(model, batch):
    seen = []
    target = model.classifier if hasattr(model, "classifier") else model.score
    handle = target.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    with torch.no_grad():
        logits = model(**batch).logits
    handle.remove()
    return seen[0], logits


def test_minilm_auto_reads_the_checkpoint_mean_pooling_and_respects_padding(minilm_dir):
    model = load_classifier("minilm-l6", num_labels=2)
    record = head_record(model)
    assert record.pooling == "mean" and "1_Pooling" in record.reason
    assert record.newly_initialized == ["classifier.bias", "classifier.weight"]
    assert head_module_names(model) == ["classifier"]
    tok = load_tokenizer("minilm-l6")
    batch = _batch(tok)
    pooled, logits = _classifier_input(model, batch)
    with torch.no_grad():
        states = model.bert(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    torch.testing.assert_close(pooled, (states * mask).sum(1) / mask.sum(1))
    alone = _classifier_input(model, _batch(tok, SENTENCES[1:]))[1]  # no padding for the short sentence
    torch.testing.assert_close(logits[1:], alone, atol=1e-5, rtol=1e-5)
    assert attach(model, HeadConfig()).trainable_summary()["trainable"] == 384 * 2 + 2


def test_cls_pooling_trains_the_pooler_with_the_head(minilm_dir):
    model = load_classifier("minilm-l6", num_labels=2, pooling="cls")
    assert head_module_names(model) == ["classifier", "bert.pooler"]
    head = attach(model, HeadConfig())
    assert head.trainable_summary()["trainable"] == 384 * 2 + 2 + 384 * 384 + 384
    assert all(p.requires_grad for p in model.bert.pooler.parameters())
    native = attach(load_classifier("minilm-l6", num_labels=2, pooling="native"), HeadConfig())
    assert native.trainable_summary()["trainable"] == 770  # the frozen pooler of adapters made before heads


def test_a_pooler_missing_from_the_checkpoint_is_never_used_frozen(tmp_path, tiny_bert):
    tok = load_tokenizer(tiny_bert)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config, add_pooling_layer=False).save_pretrained(tmp_path)  # e.g. exported without its pooler
    tok.save_pretrained(tmp_path)
    model = load_classifier(str(tmp_path), num_labels=2)
    record = head_record(model)
    assert record.pooling == "mean" and "newly initialised" in record.reason
    assert "bert.pooler.dense.weight" in record.newly_initialized
    cls = load_classifier(str(tmp_path), num_labels=2, pooling="cls")
    assert "bert.pooler" in head_module_names(cls)  # used: then it trains


def test_checkpoint_with_trained_pooler_uses_it_and_decoders_pool_the_last_token(tiny_bert, tmp_path):
    assert head_record(load_classifier(tiny_bert, 2)).pooling == "cls"
    tok = load_tokenizer(tiny_bert)
    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(tok),
                                             pad_token_id=0)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert head_record(load_classifier(str(tmp_path), 2)).pooling == "last"
    with pytest.raises(HeadError, match="pools the last token"):
        load_classifier(str(tmp_path), 2, pooling="mean")
    with pytest.raises(HeadError, match="unknown pooling 'max'"):
        load_classifier(tiny_bert, 2, pooling="max")


def test_roberta_mean_pooling_wraps_its_first_token_head(tmp_path, tiny_bert):
    tok = load_tokenizer(tiny_bert)
    config = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=64, pad_token_id=0, max_position_embeddings=80)
    RobertaForSequenceClassification(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model = load_classifier(str(tmp_path), 2, pooling="mean")
    assert head_module_names(model) == ["classifier"]
    logits = _classifier_input(model, _batch(tok))[1]
    alone = _classifier_input(model, _batch(tok, SENTENCES[1:]))[1]
    torch.testing.assert_close(logits[1:], alone, atol=1e-5, rtol=1e-5)


def test_adapters_record_their_head_and_deploy_rebuilds_it(tiny_bert, tmp_path):
    for pooling in ("mean", "cls"):
        adapted = attach(load_classifier(tiny_bert, 2, pooling=pooling), GraspConfig(k=4))
        with torch.no_grad():
            adapted.model.classifier.weight.add_(1.0)
        out = adapted.save_adapter(tmp_path / pooling)
        saved = json.loads((out / "adapter_config.json").read_text())
        assert saved["fingerprint"]["head"] == {"pooling": pooling}
        assert adapter_pooling(out) == pooling
        assert ("bert.pooler.dense.weight" in adapted.adapter_tensors()) == (pooling == "cls")
        dep = deploy(tiny_bert, out, "periphery", rpu="ideal")
        assert head_record(dep.model).pooling == pooling
    with pytest.raises(AdapterFileError, match="trained with pooling 'mean'"):
        load_adapter(load_classifier(tiny_bert, 2, pooling="cls"), tmp_path / "mean")


def test_head_only_adapter_records_its_pooling(tiny_bert, tmp_path):
    head = attach(load_classifier(tiny_bert, 2, pooling="mean"), HeadConfig())
    out = head.save_adapter(tmp_path / "h")
    assert adapter_pooling(out) == "mean"
    load_adapter(load_classifier(tiny_bert, 2, pooling="mean"), out)
    with pytest.raises(AdapterFileError, match="pooling 'mean'"):
        load_adapter(load_classifier(tiny_bert, 2, pooling="cls"), out)


def test_head_only_adapters_of_the_former_format_still_load(tiny_bert, tmp_path):
    """``analog_peft.head/1`` (training/head_only.py, before head-only became a method) loads as method head."""
    from analog_peft.methods.io import CHECKSUM_KEY

    head = attach(load_classifier(tiny_bert, 2, pooling="native"), HeadConfig())
    with torch.no_grad():
        head.model.classifier.weight.add_(0.5)
    out = head.save_adapter(tmp_path / "old")
    saved = json.loads((out / "adapter_config.json").read_text())
    old = {"method": "head", "head_modules": ["classifier"], "format": "analog_peft.head/1",
           "fingerprint": {"model_type": "bert"}, CHECKSUM_KEY: saved[CHECKSUM_KEY]}
    (out / "adapter_config.json").write_text(json.dumps(old))
    assert adapter_pooling(out) == "native"
    loaded = load_adapter(load_classifier(tiny_bert, 2, pooling="native"), out)
    assert torch.equal(loaded.model.classifier.weight, head.model.classifier.weight)
    assert loaded.trainable_summary()["adapter"] == 0
