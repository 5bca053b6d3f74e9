"""E2E generation training end to end with a tiny random GPT-2 and a tokenizer trained on the E2E dev set."""

from __future__ import annotations

import pytest
from tiny_models import build_tiny_gpt2  # scripts/, on sys.path by conftest

from analog_peft.tasks import E2E_METRICS
from analog_peft.training import TrainConfig, train


@pytest.mark.slow
def test_e2e_short_run_reports_all_five_metrics(tmp_path):
    model = build_tiny_gpt2(tmp_path / "tiny-gpt2")
    result = train(TrainConfig(
        model=str(model), task="e2e", method="lora", method_options={"r": 4}, rpu="ideal",
        train_split="dev", eval_split="test", train_examples=16, eval_examples=8, batch_size=8,
        max_steps=4, lr=1e-2, max_length=96, generation={"max_new_tokens": 12, "num_beams": 2},
        out_dir=str(tmp_path / "run"), progress=False, num_threads=2,
    ))
    metrics = result.summary["last_metrics"]
    assert set(E2E_METRICS) <= set(metrics)
    assert result.summary["metric_name"] == "BLEU"
    assert (tmp_path / "run" / "eval_predictions.jsonl").is_file()
