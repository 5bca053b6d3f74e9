"""Monte Carlo engine: determinism across workers, kill -9 and resume, pairing, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.deploy import deploy
from analog_peft.methods import GraspConfig, LoraConfig, attach
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, RunDirMismatch, run_montecarlo

GAUSS = {"name": "gaussian", "params": {"eta": 0.01}}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, save_perturbed_adapters) -> dict[str, str]:
    return save_perturbed_adapters(tmp_path_factory.mktemp("adapters"),
                                   [("grasp", GraspConfig(k=8)), ("lora", LoraConfig(r=4))], seed=0)


def small_config(adapters: dict[str, str], **kw) -> MonteCarloConfig:
    base = dict(
        methods=[MethodSpec(n, p) for n, p in adapters.items()],
        max_examples=32, batch_size=32, n_chips=3, times=[1.0, 86400.0], device_model=GAUSS, rpu="ideal", seed=5,
    )
    return MonteCarloConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def reference_dir(adapters, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mc") / "one"
    run_montecarlo(small_config(adapters), out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def reference_table(reference_dir) -> pd.DataFrame:
    from analog_peft.montecarlo.files import read_results_csv

    return read_results_csv(reference_dir / "results.csv")


def test_table_shape_and_digital_rows(reference_table):
    df = reference_table
    analog = df[df.chip >= 0]
    assert len(analog) == 2 * 3 * 2 * 2  # methods × chips × times × metrics
    assert set(df.metric) == {"accuracy", "matthews_correlation"}
    digital = df[df.chip == -1]
    assert set(digital.method) == {"grasp", "lora"} and (digital.device == "digital").all()
    assert set(analog.t_label) == {"1s", "1d"}


def test_same_table_with_two_workers(adapters, reference_table, tmp_path):
    df2 = run_montecarlo(small_config(adapters), tmp_path / "two", workers=2, progress=False)
    pd.testing.assert_frame_equal(df2, reference_table)


def test_resume_after_kill_9(adapters, reference_table, tmp_path):
    run_dir = tmp_path / "killed"
    cfg = small_config(adapters)
    script = (
        "import sys, json; from analog_peft.montecarlo.engine import *; "
        "c = MonteCarloConfig.from_dict(json.loads(sys.argv[1])); run_montecarlo(c, sys.argv[2], progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(cfg.to_dict()), str(run_dir)])
    deadline = time.time() + 300
    while time.time() < deadline and not list((run_dir / "chips").glob("chip_*.csv")):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = sorted(p.name for p in (run_dir / "chips").glob("chip_*.csv"))
    assert 1 <= len(done_before) < 3, "the kill should land mid-run"
    df = run_montecarlo(cfg, run_dir, progress=False)
    pd.testing.assert_frame_equal(df, reference_table)
    assert not list((run_dir / "chips").glob(".*tmp"))


def test_interrupted_and_resumed_in_process(adapters, reference_dir, reference_table, tmp_path):
    import numpy as np

    cfg = small_config(adapters)
    partial = run_montecarlo(cfg, tmp_path / "r", stop_after=1, progress=False)
    assert set(partial[partial.chip >= 0].chip) == {0}
    assert _per_example_arrays(tmp_path / "r")["pred"].shape[1] == 1
    (tmp_path / "r" / "chips" / "chip_00001.npz").write_bytes(b"half-written chip")  # killed before its CSV
    pd.testing.assert_frame_equal(run_montecarlo(cfg, tmp_path / "r", progress=False), reference_table)
    full, resumed = _per_example_arrays(reference_dir), _per_example_arrays(tmp_path / "r")
    assert resumed.keys() == full.keys()  # every chip once, the redone chip rewritten
    for key in full:
        np.testing.assert_array_equal(resumed[key], full[key])


def test_low_memory_mode_gives_the_same_table_and_resumes_a_normal_run(adapters, reference_table, tmp_path):
    partial = run_montecarlo(small_config(adapters), tmp_path / "lm", stop_after=1, progress=False)
    assert set(partial[partial.chip >= 0].chip) == {0}
    low = small_config(adapters, keep_chip_state=False)
    assert low.digest() == small_config(adapters).digest()  # same results, so the same run directory
    pd.testing.assert_frame_equal(run_montecarlo(low, tmp_path / "lm", progress=False), reference_table)
    pd.testing.assert_frame_equal(run_montecarlo(low, tmp_path / "lm2", progress=False), reference_table)


def test_other_config_in_same_dir_is_refused(adapters, tmp_path):
    run_montecarlo(small_config(adapters, n_chips=1, times=[1.0]), tmp_path / "x", progress=False)
    with pytest.raises(RunDirMismatch, match="different configuration"):
        run_montecarlo(small_config(adapters, n_chips=1, times=[1.0], seed=6), tmp_path / "x", progress=False)


def test_adapter_overwritten_in_place_is_refused_on_resume(adapters, tmp_path):
    import shutil

    copy = {name: str(tmp_path / "adapters" / name) for name in adapters}
    for name, src in adapters.items():
        shutil.copytree(src, copy[name])
    run_montecarlo(small_config(copy, n_chips=2, times=[1.0]), tmp_path / "x", progress=False, stop_after=1)
    lora = tmp_path / "adapters" / "lora" / "adapter.safetensors"
    lora.write_bytes(lora.read_bytes()[:-4] + b"\x00\x00\x00\x00")  # other weights, same folder
    with pytest.raises(RunDirMismatch, match=r"adapter files of \['lora'\] changed"):
        run_montecarlo(small_config(copy, n_chips=2, times=[1.0]), tmp_path / "x", progress=False)


def test_empty_time_grid_is_refused(adapters, tmp_path):
    with pytest.raises(ValueError, match="time grid is empty"):
        run_montecarlo(small_config(adapters, times=[]), tmp_path / "e", progress=False)


def test_unfitted_time_is_refused_before_running(adapters, tmp_path):
    with pytest.raises(ValueError, match="fitted"):
        run_montecarlo(small_config(adapters, device_model="reram", times=[3600.0]), tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()


def test_adapter_for_another_base_is_refused(tmp_path, tiny_gpt2):
    attach(tiny_gpt2, LoraConfig(r=2)).save_adapter(tmp_path / "gpt2_lora")
    cfg = MonteCarloConfig(methods=[MethodSpec("x", str(tmp_path / "gpt2_lora"))], max_examples=8, n_chips=1,
                           times=[1.0], device_model=GAUSS, rpu="ideal")
    with pytest.raises(Exception, match="made for model_type='gpt2'"):
        run_montecarlo(cfg, tmp_path / "g", progress=False)


def test_not_an_adapter_dir_is_refused(tmp_path):
    cfg = MonteCarloConfig(methods=[MethodSpec("x", str(tmp_path))], n_chips=1, times=[1.0])
    with pytest.raises(ValueError, match="adapter_config.json"):
        cfg.validate()
    for sub in ("best", "last"):  # a training run's adapter folder: its two adapters are named
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "adapter_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"pass one of its adapters, .*best or .*last"):
        cfg.validate()


def test_periphery_methods_share_the_programmed_base(adapters):
    """Chip k programs bit-identical tiles under every method (paired comparison)."""
    a = deploy("minilm-l6", adapters["grasp"], "periphery", "mapped")
    b = deploy("minilm-l6", adapters["lora"], "periphery", "mapped")
    wa = ChipProgrammer(a.model, "pcm", seed=3).program(2).drift(86400.0).weights()
    wb = ChipProgrammer(b.model, "pcm", seed=3).program(2).drift(86400.0).weights()
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_periphery_methods_copy_one_programming_with_the_same_rows(adapters):
    from analog_peft.montecarlo.engine import _Worker

    cfg = small_config(adapters, rpu="mapped", device_model="pcm", n_chips=1, times=[0.0, 86400.0])
    worker = _Worker(cfg)
    assert worker.leaders[0] is None and worker.leaders[1] is worker.deployments[0][1]  # lora copies grasp's chip
    shared = worker.chip_rows(2)
    worker.leaders = [None] * len(worker.leaders)  # every method programs its own chip, as before
    assert worker.chip_rows(2) == shared


def test_copy_from_refuses_other_targets(adapters):
    periphery = ChipProgrammer(deploy("minilm-l6", adapters["grasp"], "periphery", "mapped").model, "pcm", seed=3)
    fused = ChipProgrammer(deploy("minilm-l6", adapters["grasp"], "fused", "mapped").model, "pcm", seed=3)
    other_seed = ChipProgrammer(deploy("minilm-l6", adapters["lora"], "periphery", "mapped").model, "pcm", seed=4)
    periphery.program(0).drift(1.0)
    for chips in (fused, other_seed):
        with pytest.raises(ValueError, match="cannot copy chips"):
            chips.copy_from(periphery)


def test_fused_deployment_programs_the_adapter(adapters):
    periphery = deploy("minilm-l6", adapters["grasp"], "periphery", "ideal")
    fused = deploy("minilm-l6", adapters["grasp"], "fused", "ideal")
    tp = ChipProgrammer(periphery.model, None).targets()
    tf = ChipProgrammer(fused.model, None).targets()
    assert tp.keys() == tf.keys() and any(not torch.equal(tp[k], tf[k]) for k in tp)
    x = {"input_ids": torch.randint(1000, 3000, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    with torch.no_grad():
        assert torch.allclose(periphery.model(**x).logits, fused.model(**x).logits, atol=1e-4)


def test_manifest_records_config_and_versions(reference_table, adapters, tmp_path):
    run_montecarlo(small_config(adapters, n_chips=1), tmp_path / "m", progress=False)
    manifest = json.loads((Path(tmp_path / "m") / "manifest.json").read_text())
    assert manifest["config_hash"] and manifest["eval_set_sha256"] and manifest["eval_set_size"] == 32
    assert manifest["versions"]["aihwkit"] == "1.1.0" and manifest["device_model"]["name"] == "gaussian"


def test_torch_device_is_hashed_only_when_not_the_default() -> None:
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig

    cpu = MonteCarloConfig(methods=[MethodSpec("base")])
    assert "torch_device" not in cpu.hashed_fields()
    assert MonteCarloConfig(methods=[MethodSpec("base")], torch_device="cuda").digest() != cpu.digest()


def test_former_field_name_device_still_loads_and_keeps_the_digest() -> None:
    """``device`` (the device model) became ``device_model``: files written before load under the new name,
    the digest of existing run directories is unchanged, and both names at once are refused."""
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig

    new = MonteCarloConfig(methods=[MethodSpec("base")], device_model="hermes")
    legacy = {k: v for k, v in new.to_dict().items() if k != "device_model"} | {"device": "hermes"}
    old = MonteCarloConfig.from_dict(legacy)
    assert old == new and old.digest() == new.digest()
    assert new.hashed_fields()["device"] == "hermes" and "device_model" not in new.hashed_fields()
    toml = MonteCarloConfig.from_toml_dict({"methods": [{"name": "base", "adapter": ""}], "device": "hermes"})
    assert toml.device_model == "hermes"
    with pytest.raises(ValueError, match="both 'device' .* and 'device_model'"):
        MonteCarloConfig.from_toml_dict({"methods": [{"name": "b", "adapter": ""}], "device": "pcm", "device_model": "pcm"})


# -- run-directory integrity: one writer, validated before the manifest, extension, named differences ----


def _flock(path: Path, holder: str):
    """Hold an exclusive flock on ``path`` (as another run would) through a separate open file."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    f = path.open("a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.write(holder)
    f.flush()
    return f


def test_a_second_writer_is_refused_while_the_directory_is_locked(adapters, tmp_path):
    from analog_peft.montecarlo.files import RunDirLocked

    out = tmp_path / "locked"
    held = _flock(out / ".lock", "pid 4242 on otherhost since 2024-01-01 00:00:00\n")
    try:
        with pytest.raises(RunDirLocked, match=r"pid 4242 on otherhost.*wait for it to finish or use another --out"):
            run_montecarlo(small_config(adapters, n_chips=1, times=[1.0]), out, progress=False)
        assert not (out / "manifest.json").exists() and not (out / "chips").exists()
    finally:
        held.close()
    df = run_montecarlo(small_config(adapters, n_chips=1, times=[1.0]), out, progress=False)  # released: runs
    assert set(df[df.chip >= 0].chip) == {0}
    assert f"pid {os.getpid()}" in (out / ".lock").read_text()


def test_the_manifest_is_never_a_partial_file(adapters, tmp_path, monkeypatch):
    from conftest import DiesMidWrite

    from analog_peft.montecarlo import files

    out = tmp_path / "m"
    run_montecarlo(small_config(adapters, n_chips=1, times=[1.0]), out, progress=False)
    before = (out / "manifest.json").read_bytes()
    real_fdopen = os.fdopen
    monkeypatch.setattr(files.os, "fdopen", lambda *a, **kw: DiesMidWrite(real_fdopen(*a, **kw)))
    with pytest.raises(KeyboardInterrupt):  # extending rewrites the manifest (n_chips)
        run_montecarlo(small_config(adapters, n_chips=2, times=[1.0]), out, progress=False)
    assert (out / "manifest.json").read_bytes() == before
    assert not [p.name for p in out.rglob("*.tmp")]


def test_a_broken_adapter_leaves_no_manifest_and_the_fixed_one_runs(adapters, tmp_path):
    import shutil

    copy = tmp_path / "adapters" / "lora"
    shutil.copytree(adapters["lora"], copy)
    weights = copy / "adapter.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 3])  # truncated: cannot be loaded
    cfg = small_config({"grasp": adapters["grasp"], "lora": str(copy)}, n_chips=1, times=[1.0])
    with pytest.raises(Exception, match="adapter.safetensors"):
        run_montecarlo(cfg, tmp_path / "x", progress=False)
    assert not (tmp_path / "x" / "manifest.json").exists() and not (tmp_path / "x" / "digital.csv").exists()
    weights.write_bytes(good)
    df = run_montecarlo(cfg, tmp_path / "x", progress=False)
    assert set(df.method) == {"grasp", "lora"}


def test_a_changed_option_is_refused_naming_the_fields(adapters, tmp_path):
    run_montecarlo(small_config(adapters, n_chips=1, times=[1.0]), tmp_path / "x", progress=False)
    other = small_config(adapters, n_chips=1, times=[1.0], device_model={"name": "gaussian", "params": {"eta": 0.02}},
                         seed=6)
    with pytest.raises(RunDirMismatch, match=r"device\.params\.eta: 0\.01 → 0\.02; seed: 5 → 6"):
        run_montecarlo(other, tmp_path / "x", progress=False)
    with pytest.raises(RunDirMismatch, match=r"device: \{'name': 'gaussian'.*\} → 'pcm'"):
        run_montecarlo(small_config(adapters, n_chips=1, times=[1.0], device_model="pcm"), tmp_path / "x",
                       progress=False)


def test_raising_n_chips_extends_a_finished_run(adapters, reference_table, tmp_path):
    out = tmp_path / "ext"
    first = run_montecarlo(small_config(adapters, n_chips=2), out, progress=False)
    assert set(first[first.chip >= 0].chip) == {0, 1}
    kept = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "chips").glob("chip_*.csv")}
    df = run_montecarlo(small_config(adapters, n_chips=3), out, progress=False)
    pd.testing.assert_frame_equal(df, reference_table)  # the same table as a 3-chip run from scratch
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out / "chips").glob("chip_*.csv")
            if p.name in kept} == kept  # the first chips were not redone
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), reference_table)
    assert json.loads((out / "manifest.json").read_text())["n_chips"] == 3
    assert small_config(adapters, n_chips=2).digest() == small_config(adapters, n_chips=3).digest()


def test_lowering_n_chips_reports_the_first_chips(adapters, reference_table, tmp_path):
    out = tmp_path / "low"
    run_montecarlo(small_config(adapters, n_chips=3), out, progress=False)
    low = run_montecarlo(small_config(adapters, n_chips=2), out, progress=False)
    expected = reference_table[reference_table.chip < 2].reset_index(drop=True)
    pd.testing.assert_frame_equal(low, expected)
    assert len(list((out / "chips").glob("chip_*.csv"))) == 3  # kept on disk, counted again when raised
    pd.testing.assert_frame_equal(run_montecarlo(small_config(adapters, n_chips=3), out, progress=False),
                                  reference_table)


def test_equivalent_paths_are_the_same_configuration(adapters, tmp_path, monkeypatch):
    from analog_peft.tasks import resolve_data_dir

    data = resolve_data_dir()
    monkeypatch.delenv("ANALOG_PEFT_DATA", raising=False)
    out = tmp_path / "paths"
    run_montecarlo(small_config(adapters, n_chips=1, times=[1.0], data_dir=str(data)), out, progress=False)
    slashed = {name: path + "/" for name, path in adapters.items()}
    monkeypatch.setenv("ANALOG_PEFT_DATA", str(data))
    same = small_config(slashed, n_chips=1, times=[1.0], data_dir=None)
    assert same.digest() == small_config(adapters, n_chips=1, times=[1.0], data_dir=str(data)).digest()
    run_montecarlo(same, out, progress=False)  # not refused
    monkeypatch.chdir(Path(adapters["lora"]).parent)
    relative = small_config({name: name for name in adapters}, n_chips=1, times=[1.0])
    run_montecarlo(relative, out, progress=False)


def test_committed_run_directories_still_load():
    for manifest in Path(__file__).resolve().parents[1].glob("docs/**/manifest.json"):
        config = MonteCarloConfig.from_dict(json.loads(manifest.read_text())["config"])
        assert config.methods and len(config.digest()) == 16


def test_method_names_that_read_as_missing_survive_a_run_and_its_report(adapters, tmp_path):
    from analog_peft.montecarlo.report import write_report

    cfg = small_config({"nan": adapters["grasp"], "NA": adapters["lora"], "None": None}, n_chips=2, times=[1.0])
    df = run_montecarlo(cfg, tmp_path / "na", progress=False)
    assert set(df.method) == {"nan", "NA", "None"} and df.method.notna().all()
    files = write_report(tmp_path / "na", n_boot=50)
    summary = pd.read_csv(files.out_dir / "summary.csv", keep_default_na=False)
    assert set(summary.method) == {"nan", "NA", "None"}
    assert "NA − None" in files.html.read_text() or "NA" in files.html.read_text()


def test_manifest_records_the_platform_and_rows_do_not_depend_on_torch_threads(adapters, reference_table, tmp_path):
    """Each chip is evaluated on one torch thread whatever the caller set, so the table equals the
    reference (and the two-worker one); the manifest says where and how it was computed."""
    from device_models.portable import SCHEME

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        df = run_montecarlo(small_config(adapters), tmp_path / "threads", workers=1, progress=False)
    finally:
        torch.set_num_threads(before)
    pd.testing.assert_frame_equal(df, reference_table)
    platform = json.loads((tmp_path / "threads" / "manifest.json").read_text())["platform"]
    assert platform["chip_scheme"] == SCHEME and platform["torch_threads"] == 1
    assert platform["cpu_isa"] == torch.backends.cpu.get_cpu_capability() and platform["torch"] == torch.__version__


# -- per-example scores, replicates, sequential mode (issue 15) -------------------------------------------


def _per_example_arrays(run_dir: Path) -> dict:
    import numpy as np

    with np.load(run_dir / "per_example.npz") as z:
        return {k: z[k] for k in z.files}


def test_per_example_scores_reproduce_every_row(reference_dir, reference_table):
    import numpy as np

    from analog_peft.montecarlo.examples import load_per_example
    from analog_peft.tasks.metrics import classification_metrics

    out, df = reference_dir, reference_table
    data = load_per_example(out)
    assert data.pred.shape == (2, 3, 2, 32) and data.chips.tolist() == [0, 1, 2]
    assert data.digital_pred.shape == (2, 32) and np.all(np.isfinite(data.loss.astype(float)))
    for row in df.itertuples():  # the rows are the task metrics of the stored predictions, exactly
        m = data.method_index(row.method)
        pred = data.digital_pred[m] if row.chip < 0 else data.pred[m, row.chip, data.time_index(row.t)]
        assert classification_metrics(pred.tolist(), data.labels.tolist())[row.metric] == row.value
    examples = pd.read_csv(out / "examples.csv")
    assert list(examples["example"]) == list(range(32)) and (examples["label"] == data.labels).all()


def test_a_run_without_per_example_files_gets_chip_level_statistics(reference_dir, reference_table, tmp_path):
    import shutil

    from analog_peft.montecarlo.engine import collect
    from analog_peft.montecarlo.report import write_report

    out = tmp_path / "old"
    shutil.copytree(reference_dir, out)
    (out / "chips" / "chip_00000.npz").unlink()  # as a chip of a run made before they were kept
    pd.testing.assert_frame_equal(collect(out), reference_table)
    assert not (out / "per_example.npz").exists()
    page = write_report(out, n_boot=50, n_boot_hier=20).markdown.read_text()
    assert "Chip-level statistics only" in page and "CI (all sources)" not in page


def test_published_data_is_the_collected_table_and_its_files(reference_dir, reference_table, tmp_path):
    import shutil

    from analog_peft.montecarlo.engine import PUBLISHED_FILES, publish
    from analog_peft.montecarlo.files import read_results_csv

    run = tmp_path / "run"
    shutil.copytree(reference_dir, run)
    (run / "results.csv").unlink()  # a run killed before its table: publish assembles it from the chips
    dest = tmp_path / "docs" / "study"
    pd.testing.assert_frame_equal(publish(run, dest), reference_table)
    assert sorted(p.name for p in dest.iterdir()) == sorted(PUBLISHED_FILES)
    pd.testing.assert_frame_equal(read_results_csv(dest / "results.csv"), reference_table)
    for f in ("manifest.json", "montecarlo_config.toml"):
        assert (dest / f).read_bytes() == (reference_dir / f).read_bytes()
    with pytest.raises(FileNotFoundError):
        publish(run, tmp_path / "other", files=("results.csv", "no_such_file.npz"))


def test_replicates_and_the_sequential_rule(adapters, tmp_path):
    from analog_peft.montecarlo import stats
    from analog_peft.montecarlo.examples import load_per_example
    from analog_peft.montecarlo.sequential import run_sequential

    methods = [MethodSpec("grasp@0", adapters["grasp"]), MethodSpec("grasp@1", adapters["lora"])]
    out = tmp_path / "seq"
    noisy = {"name": "gaussian", "params": {"eta": 0.2}}  # chips that differ, so no CI is 0 wide at 2 chips
    cfg = small_config(adapters, methods=methods, n_chips=2, max_chips=3, chip_batch=1, target_ci_width=1e-9,
                       times=[1.0], device_model=noisy)
    df = run_sequential(cfg, out, progress=False)
    record = json.loads((out / "manifest.json").read_text())["sequential"]
    assert record["chips_used"] == 3 and record["stopped"].startswith("max_chips")
    assert [look["chips"] for look in record["looks"]] == [2, 3] and "anti-conservative" in record["note"]
    assert set(df[df.chip >= 0].chip) == {0, 1, 2}
    hier = stats.hierarchical_summary(df, load_per_example(out), metric="accuracy", n_boot=20).set_index("method")
    assert list(hier.index) == ["grasp"] and hier.loc["grasp", "n_seeds"] == 2 and hier.loc["grasp", "sd_seed"] > 0
    wide = run_sequential(replace(cfg, target_ci_width=10.0), out, progress=False)  # same chips, looks again
    record = json.loads((out / "manifest.json").read_text())["sequential"]
    assert record["chips_used"] == 2 and record["stopped"] == "target width reached"
    assert set(wide[wide.chip >= 0].chip) == {0, 1}
    assert max(record["final_widths"].values()) == record["looks"][0]["max_width"] <= 10.0


def test_sequential_and_replicate_options_are_checked(adapters):
    from analog_peft.cli import _parse_methods

    with pytest.raises(ValueError, match="give target_ci_width"):
        small_config(adapters, max_chips=5).validate()
    with pytest.raises(ValueError, match="max_chips >= n_chips"):
        small_config(adapters, target_ci_width=0.01).validate()
    with pytest.raises(ValueError, match="target_pair must name two methods"):
        small_config(adapters, target_ci_width=0.01, max_chips=9, target_pair=["grasp", "nope"]).validate()
    with pytest.raises(ValueError, match="followed by its index"):
        small_config(adapters, methods=[MethodSpec("grasp@x", adapters["grasp"])]).validate()
    parsed = _parse_methods([f"g={adapters['grasp']},{adapters['lora']}", f"l={adapters['lora']}"])
    assert [m["name"] for m in parsed] == ["g@0", "g@1", "l"]
    assert small_config(adapters, target_ci_width=0.5, max_chips=9).digest() == small_config(adapters).digest()
