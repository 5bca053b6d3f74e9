"""The notebooks in ``notebooks/`` execute without errors (at reduced sizes) and produce their results.

Each notebook has a ``parameters`` cell; the slow tests append smaller values to it (see
``scripts/run_notebooks.py``) and execute the notebook with nbclient in a fresh kernel, with the repository root
as working directory and every run folder in pytest's ``tmp_path``. A cell that raises fails the test. Each
notebook's last cell prints ``NOTEBOOK_SUMMARY {json}``; the tests check its values and that plots were drawn.

The fast test checks the committed notebooks: a ``parameters`` cell, outputs from a full run, no error outputs.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ["01_device_variability.ipynb", "02_hardware_aware_training.ipynb", "03_chip_monte_carlo_report.ipynb",
             "04_layer_sensitivity.ipynb"]


def _runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _outputs(nb: nbformat.NotebookNode, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == kind]


def _pngs(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _summary(nb: nbformat.NotebookNode) -> dict:
    for out in _outputs(nb, "stream"):
        for line in out.text.splitlines():
            if line.startswith("NOTEBOOK_SUMMARY "):
                return json.loads(line[len("NOTEBOOK_SUMMARY "):])
    raise AssertionError("the notebook printed no NOTEBOOK_SUMMARY line")


def _execute(name: str, parameters: dict) -> tuple[nbformat.NotebookNode, float]:
    start = time.perf_counter()
    nb = _runner().execute_notebook(NOTEBOOK_DIR / name, parameters, timeout=600)
    assert not _outputs(nb, "error")
    return nb, time.perf_counter() - start


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_parameters_and_outputs(name):
    nb = nbformat.read(str(NOTEBOOK_DIR / name), as_version=4)
    nbformat.validate(nb)
    cell = _runner().parameters_cell(nb)
    assert "injected parameters" not in cell.source, "commit the notebook with its default parameters"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.get("execution_count") for c in code), "commit the notebook executed (scripts/run_notebooks.py)"
    assert not _outputs(nb, "error")
    assert _pngs(nb) >= 2
    _summary(nb)


@pytest.mark.notebook
@pytest.mark.slow
def test_01_device_variability():
    nb, _ = _execute("01_device_variability.ipynb", {
        "DEVICES": ["gaussian", "reram"], "N_CHIPS": 2, "N_SENTENCES": 4, "N_CURVE": 20_000, "DRIFT_POINTS": 4,
    })
    summary = _summary(nb)
    assert summary["devices"] == 2
    errors = summary["output_error_1day_mean"]
    assert set(errors) == {"gaussian", "reram"}
    # relative Gaussian noise (η = 0.01 of the layer max) is far milder than ReRAM (Wan 2022) after a day
    assert 0 < errors["gaussian"] < errors["reram"] < 2
    assert _pngs(nb) >= 4  # conductance curves, drift, per-layer errors, chip spread


@pytest.mark.notebook
@pytest.mark.slow
def test_02_hardware_aware_training(tmp_path):
    nb, _ = _execute("02_hardware_aware_training.ipynb", {
        "TRAIN_EXAMPLES": 48, "EVAL_EXAMPLES": 32, "BATCH_SIZE": 16, "MAX_LENGTH": 32, "N_EVAL_CHIPS": 1,
        "METHODS": ["grasp", "stochgrasp", "stochgrasp_lam0"], "OUT_DIR": str(tmp_path),
    })
    summary = _summary(nb)
    assert set(summary["clean_accuracy"]) == {"grasp", "stochgrasp", "stochgrasp_lam0"}
    assert all(0 <= v <= 1 for v in summary["clean_accuracy"].values())
    assert all(0 <= v <= 1 for v in summary["chip_accuracy_mean"].values())
    sig = summary["sigma_gamma_mean"]
    assert sig["grasp"] == 0  # deterministic γ
    # the noise-aware term pulls σ_γ from its initial 0.01 toward the (larger) derived target; λ = 0 does not
    assert summary["sigma_target_mean"] > 0.01
    assert abs(sig["stochgrasp"] - summary["sigma_target_mean"]) < abs(sig["stochgrasp_lam0"] - summary["sigma_target_mean"])
    assert _pngs(nb) >= 4  # curves, σ per layer, γ KDEs, accuracy bars
    assert (tmp_path / "grasp" / "adapter" / "best" / "adapter_config.json").is_file()


@pytest.mark.notebook
@pytest.mark.slow
def test_03_chip_monte_carlo_report(tmp_path):
    nb, _ = _execute("03_chip_monte_carlo_report.ipynb", {
        "DEVICE": {"name": "gaussian", "eta": 0.02}, "N_CHIPS": 3, "EVAL_EXAMPLES": 24, "TIMES": ["1s", "1d"],
        "N_BOOT": 199, "OUT_DIR": str(tmp_path),
    })
    summary = _summary(nb)
    assert summary["chips"] == 3
    assert set(summary["mean_accuracy"]) == {f"{m}@{t}" for m in ("grasp", "stochgrasp") for t in ("1s", "1d")}
    for low, high in summary["ci"].values():
        assert low <= high
    assert set(summary["wilcoxon_p"]) == {"1s", "1d"}
    assert all(0 <= p <= 1 for p in summary["wilcoxon_p"].values())
    # chips × 24 sentences: the hierarchical CI holds the chip mean and is never narrower than the chip-only CI
    assert set(summary["hier_ci"]) == set(summary["ci"])
    for key, (low, high) in summary["hier_ci"].items():
        assert low <= summary["mean_accuracy"][key] <= high
        assert high - low >= summary["ci"][key][1] - summary["ci"][key][0] - 1e-9
    report = Path(summary["report"])
    assert report.is_file() and report.is_relative_to(tmp_path)
    assert "<img" in report.read_text()
    assert _pngs(nb) >= 3


@pytest.mark.notebook
@pytest.mark.slow
def test_04_layer_sensitivity(tmp_path):
    nb, _ = _execute("04_layer_sensitivity.ipynb", {
        "DEVICE": {"name": "gaussian", "eta": 0.05}, "T": "1d", "ROLES": ["q", "ffn_down"], "N_CHIPS": 2,
        "EVAL_EXAMPLES": 24, "OUT_DIR": str(tmp_path),
    })
    summary = _summary(nb)
    assert summary["chips"] == 2 and set(summary["loss_points"]) == {"all", "role:q", "role:ffn_down"}
    assert all(-100 <= v <= 100 for v in summary["loss_points"].values())
    assert summary["committed_top_layer"].startswith("bert.encoder.layer.")
    assert _pngs(nb) >= 3  # the committed grid and keep-digital curve, the live role losses
    assert (tmp_path / "role_q" / "results.csv").is_file()
