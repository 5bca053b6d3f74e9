"""Every GLUE task: readers of the GLUE release's TSV layouts, pair tokenisation, the GLUE metrics, the real
MRPC / STS-B files, training on a pair task and on regression, and a regression chip Monte Carlo."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analog_peft.tasks import (
    encode_classification,
    f1_score,
    get_task,
    list_tasks,
    load_split,
    pad_collate,
    pearson,
    spearman,
)
from analog_peft.tasks.paths import DEFAULT_DATA_DIR

needs_data = pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason=f"shared datasets not at {DEFAULT_DATA_DIR}")
GAUSS = {"name": "gaussian", "params": {"eta": 0.01}}
GLUE = ("cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli")


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv("ANALOG_PEFT_DATA", raising=False)


def tsv(*rows: tuple) -> str:
    return "".join("\t".join(map(str, r)) + "\n" for r in rows)


MNLI_TRAIN_HEADER = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                     "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label")
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:11] + ("label2", "label3", "label4", "label5", "gold_label")


def mnli_row(i: int, a: str, b: str, label: str, dev: bool) -> tuple:
    votes = (label,) * (5 if dev else 1)
    return (i, 31193, f"{31193}n", "government", f"( ( {a} ) )", f"( ( {b} ) )", f"(ROOT (S {a}))",
            f"(ROOT (S {b}))", a, b, *votes, label)


#: task -> (folder, {split file: content}, split, expected texts, expected second texts, expected labels)
LAYOUTS = {
    "cola": ("CoLA", {"dev.tsv": tsv(("gj04", 1, "", "Our friends won't buy this analysis."),
                                     ("gj04", 0, "*", "They drank the pub."))},
             "dev", ["Our friends won't buy this analysis.", "They drank the pub."], None, [1, 0]),
    "sst2": ("SST-2", {"dev.tsv": tsv(("sentence", "label"), ("it 's a charming journey . ", 1),
                                      ("unflinchingly bleak", 0))},
             "dev", ["it 's a charming journey .", "unflinchingly bleak"], None, [1, 0]),
    "mrpc": ("MRPC", {"dev.tsv": "\ufeff" + tsv(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
                                                (1, 1089874, 1089925, 'He said " no " .', "He refused ."),
                                                (0, 3019446, 3019327, "Stocks rose .", "Bonds fell ."))},
             "dev", ['He said " no " .', "Stocks rose ."], ["He refused .", "Bonds fell ."], [1, 0]),
    "stsb": ("STS-B", {"dev.tsv": tsv(("index", "genre", "filename", "year", "old_index", "source1", "source2",
                                       "sentence1", "sentence2", "score"),
                                      (0, "main-captions", "MSRvid", "2012test", 0, "none", "none",
                                       "A man with a hard hat is dancing.", 'A man "dances".', "5.000"),
                                      (1, "main-captions", "MSRvid", "2012test", 7, "none", "none",
                                       "A cat sleeps.", "A dog runs.", "0.250"))},
             "dev", ["A man with a hard hat is dancing.", "A cat sleeps."], ['A man "dances".', "A dog runs."],
             [5.0, 0.25]),
    "qqp": ("QQP", {"dev.tsv": tsv(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"),
                                   (201359, 303345, 303346, "Why are people so obsessed?", "Why obsess?", 1),
                                   (263843, 69383, 380476, "a question cut short"),  # malformed: skipped
                                   (172974, 266948, 175089, "How do I cook rice?", "Is the moon far?", 0))},
            "dev", ["Why are people so obsessed?", "How do I cook rice?"], ["Why obsess?", "Is the moon far?"],
            [1, 0]),
    "mnli": ("MNLI", {"dev_matched.tsv": tsv(MNLI_DEV_HEADER,
                                             mnli_row(0, "The new rights are nice", "Everyone loves them",
                                                      "neutral", True),
                                             mnli_row(1, 'He said "yes"', "He agreed", "entailment", True),
                                             mnli_row(2, "It is day", "It is night", "contradiction", True))},
             "dev_matched", ["The new rights are nice", 'He said "yes"', "It is day"],
             ["Everyone loves them", "He agreed", "It is night"], [1, 0, 2]),
    "qnli": ("QNLI", {"dev.tsv": tsv(("index", "question", "sentence", "label"),
                                     (0, 'What came into force after "the" treaty?', "The treaty did.",
                                      "entailment"),
                                     (1, "Who?", "Nobody knows.", "not_entailment"))},
             "dev", ['What came into force after "the" treaty?', "Who?"], ["The treaty did.", "Nobody knows."],
             [0, 1]),
    "rte": ("RTE", {"dev.tsv": tsv(("index", "sentence1", "sentence2", "label"),
                                   (0, 'Dana Reeve, the widow of "Superman" star, died.', "Reeve is dead.",
                                    "entailment"),
                                   (1, "Yet, we now are discovering.", "Bacteria is winning.", "not_entailment"))},
            "dev", ['Dana Reeve, the widow of "Superman" star, died.', "Yet, we now are discovering."],
            ["Reeve is dead.", "Bacteria is winning."], [0, 1]),
    "wnli": ("WNLI", {"dev.tsv": tsv(("index", "sentence1", "sentence2", "label"),
                                     (0, "The drain is clogged with hair. It has to be cleaned.",
                                      "The hair has to be cleaned.", 0),
                                     (1, "Jane knocked on the door.", "Jane knocked.", 1))},
             "dev", ["The drain is clogged with hair. It has to be cleaned.", "Jane knocked on the door."],
             ["The hair has to be cleaned.", "Jane knocked."], [0, 1]),
}


def write_glue(root: Path, task: str) -> Path:
    folder, files, *_ = LAYOUTS[task]
    for name, content in files.items():
        path = root / "glue" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tokenizer():
    from analog_peft.models import load_tokenizer

    return load_tokenizer("minilm-l6")


# -------------------------------------------------------------------------------- registry and readers


def test_every_glue_task_is_registered_with_its_primary_metric():
    assert set(GLUE) <= set(list_tasks())
    primary = {"cola": "matthews_correlation", "sst2": "accuracy", "mrpc": "f1", "stsb": "pearson", "qqp": "f1",
               "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy", "wnli": "accuracy"}
    for name, metric in primary.items():
        spec = get_task(name)
        assert spec.metric == metric and metric in spec.metrics, name
    assert get_task("stsb").kind == "regression" and get_task("stsb").num_labels == 1
    assert get_task("mnli").num_labels == 3 and get_task("STS-B").name == "stsb"
    assert get_task("sst2").metrics == get_task("cola").metrics == ("accuracy", "matthews_correlation")


@pytest.mark.parametrize("task", GLUE)
def test_reader_of_each_glue_layout(tmp_path, task):
    _, _, split, texts, pairs, labels = LAYOUTS[task]
    data = load_split(task, split, data_dir=write_glue(tmp_path, task))
    assert data.texts == texts
    assert data.text_pairs == pairs
    assert data.labels == labels
    assert all(isinstance(y, float if task == "stsb" else int) for y in data.labels)
    assert len(data.sha256) == 64


def test_mnli_has_two_dev_sets_and_no_plain_dev(tmp_path):
    root = write_glue(tmp_path, "mnli")
    mismatched = tsv(MNLI_DEV_HEADER, mnli_row(9, "A", "B", "neutral", True))
    (root / "glue" / "MNLI" / "dev_mismatched.tsv").write_text(mismatched)
    assert load_split("mnli", "dev_mismatched", data_dir=root).labels == [1]
    assert load_split("mnli", "validation_matched", data_dir=root).split == "dev_matched"
    with pytest.raises(ValueError, match=r"no split 'dev'; splits: train, dev_matched, dev_mismatched"):
        load_split("mnli", "dev", data_dir=root)


def test_mnli_train_layout_reads_gold_label(tmp_path):
    path = tmp_path / "glue" / "MNLI" / "train.tsv"
    path.parent.mkdir(parents=True)
    path.write_text(tsv(MNLI_TRAIN_HEADER, mnli_row(0, "P", "H", "contradiction", False)))
    data = load_split("mnli", "train", data_dir=tmp_path)
    assert (data.texts, data.text_pairs, data.labels) == (["P"], ["H"], [2])


def test_quotes_are_text_not_csv_quoting(tmp_path):
    """An opening quote never closed (as in QNLI/RTE) must not swallow the following rows."""
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_text(tsv(("index", "sentence1", "sentence2", "label"),
                                        (0, '"Open quote', "b", "entailment"), (1, "c", "d", "not_entailment")))
    data = load_split("rte", "dev", data_dir=tmp_path)
    assert data.texts == ['"Open quote', "c"] and data.labels == [0, 1]


def test_string_label_outside_the_glue_label_set(tmp_path):
    folder = tmp_path / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "dev.tsv").write_text(tsv(("index", "sentence1", "sentence2", "label"), (0, "a", "b", "neutral")))
    with pytest.raises(ValueError, match=r"dev.tsv:2: label 'neutral' is not in the label set "
                                         r"\['entailment', 'not_entailment'\]"):
        load_split("rte", "dev", data_dir=tmp_path)


def test_pairs_are_tokenised_as_pairs(tmp_path, tokenizer):
    data = load_split("mrpc", "dev", data_dir=write_glue(tmp_path, "mrpc"))
    feats = encode_classification(tokenizer, data, max_length=64)
    direct = tokenizer(data.texts[0], data.text_pairs[0])
    assert feats[0]["input_ids"] == direct["input_ids"] and feats[0]["token_type_ids"] == direct["token_type_ids"]
    assert 1 in feats[0]["token_type_ids"] and feats[0]["token_type_ids"][0] == 0
    assert feats[0]["input_ids"].count(tokenizer.sep_token_id) == 2
    single = encode_classification(tokenizer, load_split("sst2", "dev", data_dir=write_glue(tmp_path, "sst2")))
    assert set(single[0]["token_type_ids"]) == {0}


def test_regression_labels_batch_as_floats(tmp_path, tokenizer):
    data = load_split("stsb", "dev", data_dir=write_glue(tmp_path, "stsb"))
    batch = pad_collate(encode_classification(tokenizer, data))
    assert batch["labels"].dtype.is_floating_point and batch["labels"].tolist() == [5.0, 0.25]
    assert (batch["token_type_ids"] == 1).any()


# -------------------------------------------------------------------------------- the real files


@needs_data
def test_real_mrpc_files_bom_and_counts():
    train, dev = load_split("mrpc", "train"), load_split("mrpc", "dev")
    assert (len(train), len(dev)) == (3667, 408)  # ../shared/datasets/README.md
    assert set(train.labels) == {0, 1} and set(dev.labels) == {0, 1}
    assert train.texts[0].startswith("Amrozi accused his brother") and not train.texts[0].startswith("\ufeff")
    assert train.text_pairs[0].startswith("Referring to him as only")
    assert train.labels[:3] == [1, 0, 1]


@needs_data
def test_real_stsb_files_counts_and_scores():
    train, dev = load_split("stsb", "train"), load_split("stsb", "dev")
    assert (len(train), len(dev)) == (5749, 1500)
    assert all(0.0 <= y <= 5.0 for y in train.labels + dev.labels)
    assert (train.texts[0], train.text_pairs[0], train.labels[0]) == (
        "A plane is taking off.", "An air plane is taking off.", 5.0)
    assert len({round(y, 3) for y in dev.labels}) > 50  # real-valued, not classes


# -------------------------------------------------------------------------------- metrics


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / math.sqrt((a * a).sum() * (b * b).sum()))


def test_f1_against_hand_counts():
    preds, labels = [1, 1, 0, 1, 0, 0, 1], [1, 0, 0, 1, 1, 0, 1]
    tp, fp, fn = 3, 1, 1
    assert f1_score(preds, labels) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert f1_score(preds, labels) == pytest.approx(2 * precision * recall / (precision + recall))
    assert f1_score([0, 0], [0, 0]) == 0.0 and f1_score([1, 1], [1, 1]) == 1.0


def test_pearson_and_spearman_against_independent_formulas():
    rng = np.random.default_rng(3)
    y = np.round(rng.uniform(0, 5, 200), 1)  # ties, as STS-B's scores
    p = y + rng.normal(0, 1.5, 200)
    assert pearson(p, y) == pytest.approx(_corr(p, y), abs=1e-12)
    assert spearman(p, y) == pytest.approx(_corr(_ranks(p), _ranks(y)), abs=1e-12)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)
    assert pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]) == 0.0  # constant predictions: 0, not NaN


def test_each_task_reports_its_glue_metrics():
    y = [0, 1, 1, 0, 1]
    p = [0, 1, 0, 0, 1]
    assert list(get_task("mrpc").compute_metrics(p, y)) == ["accuracy", "f1"]
    assert get_task("qqp").compute_metrics(p, y)["f1"] == pytest.approx(0.8)
    assert list(get_task("mnli").compute_metrics(p, y)) == ["accuracy"]
    assert list(get_task("cola").compute_metrics(p, y)) == ["accuracy", "matthews_correlation"]
    scores = get_task("stsb").compute_metrics([0.1, 2.0, 2.9, 4.2], [0.0, 2.5, 2.0, 5.0])
    assert list(scores) == ["pearson", "spearman"] and scores["spearman"] == pytest.approx(0.8)


# -------------------------------------------------------------------------------- training and Monte Carlo


def _glue_dir(root: Path, task: str, header: tuple, row, n: int) -> Path:
    folder = root / task
    folder.mkdir(parents=True)
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text(tsv(header, *(row(i) for i in range(n))))
    return folder


def _small(tiny_bert: str, **kw) -> dict:
    return {"model": tiny_bert, "method": "grasp", "method_options": {"k": 4}, "batch_size": 8, "max_length": 32,
            "progress": False, "log_every": 1, "lr": 5e-2, **kw}


@pytest.fixture(scope="module")
def stsb_run(tmp_path_factory, tiny_bert):
    from analog_peft.training import TrainConfig, train

    root = tmp_path_factory.mktemp("stsb")
    header = LAYOUTS["stsb"][1]["dev.tsv"].splitlines()[0].split("\t")
    data = _glue_dir(root, "STS-B", tuple(header), lambda i: (
        i, "main-news", "f", "2012", i, "none", "none", f"A man plays the guitar {i}.",
        f'A "man" plays {"music" if i % 2 else "football"}.', f"{(i % 2) * 4 + (i % 3) * 0.3:.3f}"), 24)
    result = train(TrainConfig(**_small(tiny_bert, task="stsb", data_dir=str(data), max_steps=6,
                                        out_dir=str(root / "run"))))
    return result, data


def test_short_regression_training_reports_pearson_and_spearman(stsb_run):
    from analog_peft.training import read_log

    result, data = stsb_run
    s = result.summary
    assert s["metric_name"] == "pearson" and set(s["last_metrics"]) == {"pearson", "spearman"}
    assert all(math.isfinite(v) and -1 <= v <= 1 for v in s["last_metrics"].values())
    assert s["data"]["task_type"] == "regression" and s["data"]["num_labels"] == 1
    assert s["data"]["files"]["train"]["source"] == str((data / "train.tsv").resolve())
    losses = [e["loss"] for e in read_log(result.out_dir / "log.jsonl") if e["event"] == "train"]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]  # MSE on the scores goes down


def test_short_pair_task_training(tmp_path, tiny_bert):
    from analog_peft.training import TrainConfig, train

    data = _glue_dir(tmp_path, "RTE", ("index", "sentence1", "sentence2", "label"), lambda i: (
        i, f"The cat sat on mat {i}.", "The cat sat." if i % 2 else "Dogs fly.",
        "entailment" if i % 2 else "not_entailment"), 16)
    result = train(TrainConfig(**_small(tiny_bert, task="rte", data_dir=str(data), max_steps=2,
                                        out_dir=str(tmp_path / "run"))))
    s = result.summary
    assert s["task"] == "rte" and s["metric_name"] == "accuracy" and 0 <= s["metric"] <= 1
    assert s["train_examples"] == 16 and s["data"]["name"] == "rte"


def test_one_chip_monte_carlo_on_regression(stsb_run, tiny_bert, tmp_path):
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo

    result, data = stsb_run
    config = MonteCarloConfig(methods=[MethodSpec("grasp", str(result.out_dir / "adapter" / "best"))],
                              base_model=tiny_bert, task="stsb", data_dir=str(data), n_chips=1, times=[1.0],
                              device_model=GAUSS, rpu="ideal", batch_size=16, max_length=32)
    df = run_montecarlo(config, tmp_path / "mc", progress=False)
    assert set(df.metric) == {"pearson", "spearman"} and len(df) == 4  # digital + 1 chip, 2 metrics
    digital = df[(df.chip == -1) & (df.metric == "pearson")].value.item()
    assert digital == pytest.approx(result.summary["metric"], abs=1e-5)  # same scoring as training
    manifest = json.loads((tmp_path / "mc" / "manifest.json").read_text())
    assert manifest["num_labels"] == 1 and manifest["data"]["name"] == "stsb"
    assert manifest["data"]["files"]["eval"]["sha256"] == result.summary["data"]["files"]["eval"]["sha256"]
