"""scripts/robustness_study.py builds its Monte Carlo studies from the methods study's runs (every seed at the
best rate, middles of the grids first) and refuses what it cannot use."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import methods_study  # noqa: E402
import robustness_study  # noqa: E402


def _runs(root: Path, method: str, scores: dict[float, float], seeds: tuple[int, ...]) -> None:
    for lr, metric in scores.items():
        d = root / methods_study.run_name("sst2", method, lr, 0)
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"metric": metric}))
    best = max(scores, key=scores.get)
    for s in seeds:
        (root / methods_study.run_name("sst2", method, best, s) / "adapter" / "best").mkdir(parents=True)


def _args(runs: Path, **kw) -> argparse.Namespace:
    base = {"task": "sst2", "methods": "head,grasp,lora", "only": "", "chips": 50, "max_examples": None,
            "runs": str(runs), "out": "unused", "workers": 1}
    return argparse.Namespace(**{**base, **kw})


def test_studies_take_every_seed_at_the_best_rate(tmp_path, capsys):
    _runs(tmp_path, "head", {3e-3: 0.80, 1e-2: 0.81, 3e-2: 0.79}, (0, 1, 2))
    _runs(tmp_path, "grasp", {3e-3: 0.83, 1e-2: 0.82, 3e-2: 0.80}, (0, 1, 2))
    _runs(tmp_path, "lora", {1e-3: 0.85, 3e-3: 0.84, 1e-2: 0.5}, (0,))  # seeds 1, 2 missing: skipped
    configs = robustness_study.studies(_args(tmp_path))
    assert list(configs)[:2] == ["gauss_layer_0.01", "pcm"]  # the middles first
    assert set(configs) == set(robustness_study.GRIDS)
    methods = configs["pcm"].methods
    assert [m.name for m in methods] == ["head@0", "head@1", "head@2", "grasp@0", "grasp@1", "grasp@2"]
    assert all("lr0.01_" in m.adapter for m in methods[:3]) and all("lr0.003_" in m.adapter for m in methods[3:])
    assert "skip sst2/lora: 1 of 3 seeds" in capsys.readouterr().out
    pcm, gauss = configs["pcm"], configs["gauss_column_0.02"]
    assert (pcm.rpu, pcm.allow_conversion_override, pcm.max_length, pcm.n_chips) == ("mapped", True, 48, 50)
    assert pcm.times == list(robustness_study.TIMES)
    assert gauss.rpu == "ideal" and gauss.device_model == {"name": "gaussian", "eta": 0.02, "scale": "column_max"}


def test_every_study_reads_its_device_at_times_it_is_defined_for():
    from device_models import DeviceModelError, get

    for device, _, times in robustness_study.GRIDS.values():
        for t in times:
            get(device).check_time(t)  # ReRAM (Wan et al. 2022) exists at 1 s, 1 d and 2 d only
    with pytest.raises(DeviceModelError, match="only fitted at"):
        get(robustness_study.GRIDS["reram"][0]).check_time(robustness_study.YEAR)


def test_unknown_studies_and_missing_adapters_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown study"):
        robustness_study.studies(_args(tmp_path, only="gauss_layer_0.5"))
    with pytest.raises(SystemExit, match="no adapters with all seeds"):
        robustness_study.cmd_run(_args(tmp_path))


def test_a_study_still_running_is_not_exported(tmp_path, capsys):
    run = tmp_path / "src" / "sst2" / "pcm"
    (run / "chips").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"n_chips": 50}))
    for k in range(2):
        (run / "chips" / f"chip_{k:05d}.csv").write_text("")
    robustness_study.export(tmp_path / "src", tmp_path / "out")
    assert "skip sst2/pcm: 2 of 50 chips" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_fidelity_criteria_each_hold_or_fail():
    import pandas as pd

    ycols = {f"yield_{round(100 * r)}": None for r in robustness_study.YIELD_RS}
    def row(method, p5, yields):
        return {"study": "s", "t": 1.0, "method": method, "p5": p5, **dict(zip(ycols, yields, strict=True))}
    summary = pd.DataFrame([row("grasp", 0.55, (0.0, 0.0, 0.38)), row("inj", 0.66, (0.0, 0.08, 0.94)),
                            row("sg", 0.59, (0.0, 0.0, 0.32))])
    paired = pd.DataFrame([{"study": "s", "t": 1.0, "a": "inj", "mean_diff": 0.076, "p_holm": 1e-8},
                           {"study": "s", "t": 1.0, "a": "sg", "mean_diff": 0.035, "p_holm": 0.02}])
    f = robustness_study.fidelity_rows(summary, paired).set_index("method")
    assert f.loc["inj", ["mean_ok", "p5_ok", "p_ok", "yield_ok", "all_ok"]].tolist() == [True] * 5
    assert f.loc["inj", "yield_ratio_80"] == pytest.approx(0.94 / 0.38)
    assert f.loc["sg", ["mean_ok", "p5_ok", "p_ok", "yield_ok", "all_ok"]].tolist() == [True, False, False, False, False]
    assert f.loc["sg", "p5_diff"] == pytest.approx(0.04)
    worse = robustness_study.fidelity_rows(summary, paired.assign(mean_diff=-0.05, p_holm=1e-9))
    assert not worse["p_ok"].any()  # a significant loss is not a significant gain
