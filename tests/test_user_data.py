"""The user's own data (task ``custom``): CSV / TSV / JSON Lines / Parquet readers, label sets, training and
the Monte Carlo engine on the same files (flags and TOML alike), and one clear error per bad input."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
import types
from pathlib import Path

import pytest

from analog_peft.tasks import DataError, DataOptions, encode_classification, load_split, resolve_task
from analog_peft.training import ConfigError, TrainConfig

REVIEWS = [("a wonderful, moving film", "pos"), ("dull and far too long", "neg"), ("I loved every minute", "pos"),
           ("a mess", "neg"), ("great cast, great story", "pos"), ("boring", "neg"), ("superb", "pos"),
           ("awful dialogue", "neg")]


def write_csv(path: Path, header: str, rows: list[tuple]) -> Path:
    path.write_text(header + "\n" + "".join(",".join(json.dumps(v) if isinstance(v, str) else str(v) for v in r)
                                            + "\n" for r in rows), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def spec_and_data(path: Path, **opts):
    options = DataOptions(eval_file=str(path), **opts)
    spec = resolve_task(options, "dev")
    return spec, load_split(spec, "dev", path=path, **options.columns())


def one_line_error(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


# -------------------------------------------------------------------------------- readers


def test_csv_with_string_labels_infers_a_sorted_label_set(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", "review,stars", REVIEWS)
    spec, data = spec_and_data(path, text_column="review", label_column="stars")
    assert spec.kind == "classification" and spec.label_names == ("neg", "pos") and spec.num_labels == 2
    assert data.texts[0] == "a wonderful, moving film" and data.labels[:2] == [1, 0]
    assert spec.metrics == ("accuracy", "f1", "matthews_correlation")
    assert data.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_tsv_jsonl_and_integer_labels(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\tlabel\nfine\t2\nbad\t0\nok\t1\n", encoding="utf-8")
    spec, data = spec_and_data(tsv)
    assert spec.num_labels == 3 and spec.label_names == () and data.labels == [2, 0, 1]
    jsonl = write_jsonl(tmp_path / "d.jsonl", [{"text": "fine", "label": 1}, {"text": "bad", "label": 0}])
    spec, data = spec_and_data(jsonl)
    assert data.texts == ["fine", "bad"] and data.labels == [1, 0] and spec.num_labels == 2


def test_explicit_label_names_keep_their_order(tmp_path):
    path = write_csv(tmp_path / "r.csv", "text,label", [("x", "pos"), ("y", "neg")])
    spec, data = spec_and_data(path, labels=("pos", "neg"))
    assert spec.label_names == ("pos", "neg") and data.labels == [0, 1]


def test_two_text_columns_are_tokenised_as_pairs(tmp_path):
    from analog_peft.models import load_tokenizer

    path = write_jsonl(tmp_path / "pairs.jsonl", [{"q": "Is it raining?", "a": "Yes, heavily.", "y": "match"},
                                                  {"q": "Who won?", "a": "The cat sat.", "y": "other"}])
    spec, data = spec_and_data(path, text_column="q", text_pair_column="a", label_column="y")
    assert data.text_pairs == ["Yes, heavily.", "The cat sat."] and spec.label_names == ("match", "other")
    feats = encode_classification(load_tokenizer("minilm-l6"), data)
    assert 1 in feats[0]["token_type_ids"]


def test_float_labels_make_a_regression_task(tmp_path):
    path = write_csv(tmp_path / "s.csv", "a,b,score", [("x", "y", 0.5), ("p", "q", 4.25)])
    spec, data = spec_and_data(path, text_column="a", text_pair_column="b", label_column="score",
                               task_type="regression")
    assert spec.kind == "regression" and spec.num_labels == 1 and spec.metric == "pearson"
    assert data.labels == [0.5, 4.25]


def test_parquet_reads_with_pyarrow_or_names_the_missing_engine(tmp_path):
    path = tmp_path / "d.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        path.write_bytes(b"PAR1 not really")
        with pytest.raises(DataError, match=r"reading Parquet needs pyarrow .*pip install pyarrow"):
            spec_and_data(path)
    else:
        import pandas as pd

        pd.DataFrame({"text": ["a", "b"], "label": [1, 0]}).to_parquet(path)
        assert spec_and_data(path)[1].labels == [1, 0]


def test_hub_dataset_name_for_custom_data(monkeypatch):
    """``hf_dataset`` goes through ``datasets.load_dataset`` (stubbed: no network here)."""
    calls = []

    class Split(dict):
        column_names = ["content", "rating"]

    def load_dataset(*args, split):
        calls.append((args, split))
        return Split(content=["good", "bad", "meh"], rating=["up", "down", "up"])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    options = DataOptions(text_column="content", label_column="rating")
    spec = resolve_task(options, "train", hf_name=("someone/reviews",))
    data = load_split(spec, "train", hf_name=("someone/reviews",), **options.columns())
    assert calls[0] == (("someone/reviews",), "train") and spec.label_names == ("down", "up")
    assert data.labels == [1, 0, 1] and data.source == "hf:someone/reviews:train"


# -------------------------------------------------------------------------------- bad input: one line, the fix


@pytest.mark.parametrize(
    ("content", "options", "match"),
    [
        ("review,stars\ngood,1\n", {"text_column": "text"},
         r"no column 'text'; its columns are \['review', 'stars'\]: set text_column \(--text-column\)"),
        ("text,label\ngood,1\n", {"label_column": "stars"}, r"no column 'stars'.*set label_column"),
        ("text,label\ngood,meh\n", {"labels": ("neg", "pos")},
         r"r.csv:2: label 'meh' is not in the label set \['neg', 'pos'\]; .*labels = \[...\]"),
        ("text,label\ngood,0.5\nbad,1\n", {},
         r"r.csv:2: label '0.5' is not an integer.*task_type = \"regression\" \(--task-type regression\)"),
        ("text,label\ngood,0.5\n", {"num_labels": 2},
         r"r.csv:2: label '0.5' is not an integer.*task_type = \"regression\""),
        ("text,label\ngood,3\n", {"num_labels": 2}, r"label 3 is outside 0..1 .*--num-labels"),
        ("", {}, r"r.csv is empty \(0 bytes\)"),
        ("text,label\n", {"num_labels": 2}, r"the split is empty \(no data rows\)"),
        ("text,label\n,1\n ,0\n", {}, r"text column 'text' is empty in every row; set text_column"),
        ("text,label\ngood,\n", {"num_labels": 2}, r"r.csv:2: the label is missing"),
        ("text,score\ngood,high\n", {"label_column": "score", "task_type": "regression"},
         r"label 'high' is not a finite number.*regression"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, content, options, match):
    path = tmp_path / "r.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        spec_and_data(path, **options)
    assert re.search(match, one_line_error(err.value)), err.value


def test_unknown_file_type_and_bad_options(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    with pytest.raises(DataError, match=r"unknown file type '.xlsx'; use one of .csv, .tsv"):
        spec_and_data(path)
    with pytest.raises(ConfigError, match=r"task_type must be one of \('classification', 'regression'\)"):
        TrainConfig(task="custom", train_file="a.csv", eval_file="b.csv", task_type="ordinal")
    with pytest.raises(ConfigError, match=r"task 'stsb' is a regression task; drop task_type"):
        TrainConfig(task="stsb", task_type="classification")
    with pytest.raises(ConfigError, match=r"either hf_dataset or train_file"):
        TrainConfig(task="custom", train_file="a.csv", hf_dataset="imdb")


def test_cli_train_errors_are_one_line_with_exit_2(tmp_path, tiny_bert, capsys):
    from analog_peft.cli import main

    train_file = write_csv(tmp_path / "train.csv", "review,stars", REVIEWS)
    args = ["train", "--model", tiny_bert, "--task", "custom", "--train-file", str(train_file), "--eval-file",
            str(train_file), "--label-column", "stars", "--out-dir", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("analog-peft: error: ") and "\n" not in err
    assert "no column 'text'; its columns are ['review', 'stars']: set text_column (--text-column)" in err
    assert main(["train", "--task", "custom", "--out-dir", str(tmp_path / "r2")]) == 2
    assert "set train_file (--train-file)" in capsys.readouterr().err
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_cli_montecarlo_custom_without_eval_file(capsys):
    from analog_peft.cli import main

    assert main(["montecarlo", "--method", "base=", "--task", "custom", "--out", "unused"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("analog-peft: error: ") and "--eval-file" in err and "\n" not in err


# -------------------------------------------------------------------------------- train + Monte Carlo


@pytest.fixture(scope="module")
def custom_run(tmp_path_factory, tiny_bert):
    """``analog-peft train --config run.toml`` on CSV files with string labels."""
    from analog_peft.cli import main

    root = tmp_path_factory.mktemp("custom")
    train_file = write_csv(root / "train.csv", "review,stars", REVIEWS * 2)
    eval_file = write_csv(root / "eval.csv", "review,stars", REVIEWS)
    toml = root / "run.toml"
    toml.write_text(f'model = "{tiny_bert}"\ntask = "custom"\ntrain_file = "{train_file}"\n'
                    f'eval_file = "{eval_file}"\ntext_column = "review"\nlabel_column = "stars"\n'
                    'method = "grasp"\nmax_steps = 2\nbatch_size = 8\nmax_length = 32\ndata_name = "my-reviews"\n'
                    '[method_options]\nk = 4\n')
    out = root / "run"
    assert main(["train", "--config", str(toml), "--out-dir", str(out), "--no-progress"]) == 0
    return out, train_file, eval_file


def test_training_on_own_files_records_the_data(custom_run):
    out, train_file, eval_file = custom_run
    summary = json.loads((out / "summary.json").read_text())
    data = summary["data"]
    assert data["name"] == "my-reviews" and data["labels"] == ["neg", "pos"] and data["num_labels"] == 2
    assert data["files"]["train"] == {"source": str(train_file.resolve()), "split": "train", "examples": 16,
                                      "sha256": hashlib.sha256(train_file.read_bytes()).hexdigest()}
    assert data["files"]["eval"]["sha256"] == hashlib.sha256(eval_file.read_bytes()).hexdigest()
    assert summary["metric_name"] == "accuracy" and set(summary["last_metrics"]) == {
        "accuracy", "f1", "matthews_correlation"}
    saved = TrainConfig.from_toml(out / "train_config.toml")
    assert saved.labels == ["neg", "pos"] and saved.num_labels == 2  # the inferred label set is written back


def test_monte_carlo_reads_the_training_runs_data_config(custom_run, tiny_bert, capsys):
    from analog_peft.cli import main

    out, _, eval_file = custom_run
    mc = out.parent / "mc"
    args = ["montecarlo", "--method", f"grasp={out}", "--base", tiny_bert, "--data-config", str(out),
            "--chips", "1", "--times", "1s", "--device", "gaussian", "--device-params", '{"eta": 0.01}',
            "--rpu", "ideal", "--out", str(mc)]
    assert main(args) == 0, capsys.readouterr().err
    manifest = json.loads((mc / "manifest.json").read_text())
    assert manifest["config"]["eval_file"] == str(eval_file.resolve())
    assert manifest["config"]["labels"] == ["neg", "pos"] and manifest["num_labels"] == 2
    assert manifest["data"]["name"] == "my-reviews"
    assert manifest["data"]["files"]["eval"]["sha256"] == hashlib.sha256(eval_file.read_bytes()).hexdigest()
    import pandas as pd

    df = pd.read_csv(mc / "results.csv")
    assert set(df.task) == {"my-reviews"} and set(df.metric) == {"accuracy", "f1", "matthews_correlation"}
    summary = json.loads((out / "summary.json").read_text())
    digital = df[(df.chip == -1) & (df.metric == "accuracy")].value.item()
    assert digital == pytest.approx(summary["metric"])  # the same label mapping as in training
    from analog_peft.montecarlo.report import write_report

    write_report(mc)
    assert "Chip Monte Carlo: my-reviews on" in (mc / "report" / "report.md").read_text()
