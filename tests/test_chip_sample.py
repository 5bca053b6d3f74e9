"""StochGRASP deployed with one sample of its (γ, β) per chip: the rows, the seeds, the hash and bad input."""

from __future__ import annotations

import pytest

from analog_peft.methods import GraspConfig, StochGraspConfig
from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, _Worker, chip_sample_seed, run_montecarlo
from analog_peft.montecarlo.files import read_results_csv

GAUSS = {"name": "gaussian", "params": {"eta": 0.005}}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory, save_perturbed_adapters) -> dict[str, str]:
    return save_perturbed_adapters(tmp_path_factory.mktemp("sg"), [
        ("sg", StochGraspConfig(k=8, sigma_init=0.3, gamma_form="lognormal")),
        ("grasp", GraspConfig(k=8)),
    ], seed=1)


def _config(adapters, **kw) -> MonteCarloConfig:
    methods = [MethodSpec("means", adapters["sg"]), MethodSpec("sampled", adapters["sg"], chip_sample=True)]
    base = dict(methods=methods, max_examples=32, batch_size=32, n_chips=2, times=[1.0], device_model=GAUSS,
                rpu="ideal", seed=4)
    return MonteCarloConfig(**{**base, **kw})


def test_one_sample_per_chip_is_the_layers_own_sample(adapters, tmp_path):
    run_montecarlo(_config(adapters), tmp_path / "mc", progress=False)
    df = read_results_csv(tmp_path / "mc" / "results.csv")
    acc = df[df.metric == "accuracy"].set_index(["method", "chip"])["value"]
    assert acc["means", -1] == acc["sampled", -1]  # the digital row is at the means for both
    assert any(acc["means", c] != acc["sampled", c] for c in (0, 1))  # σ = 0.3: the sample changes the rows
    # chip k's sampled rows = the means-deployed model with every layer set to the sample of chip_sample_seed(4, k)
    worker = _Worker(_config(adapters, methods=[MethodSpec("means", adapters["sg"])]))
    model = worker.deployments[0][0].model
    for chip in (0, 1):
        for layer in (m for m in model.modules() if hasattr(m, "set_chip_sample")):
            layer.set_chip_sample(chip_sample_seed(4, chip))
        rows = worker.chip_rows(chip)
        assert [r["value"] for r in rows if r["metric"] == "accuracy"] == [acc["sampled", chip]]


def test_chip_sample_is_hashed_only_when_set_and_round_trips_through_toml(adapters, tmp_path):
    plain = MonteCarloConfig(methods=[MethodSpec("means", adapters["sg"])])
    assert "chip_sample" not in plain.hashed_fields()["methods"][0]  # digests of earlier runs are unchanged
    sampled = MonteCarloConfig(methods=[MethodSpec("means", adapters["sg"], chip_sample=True)])
    assert sampled.digest() != plain.digest()
    import tomllib

    back = MonteCarloConfig.from_toml_dict(tomllib.loads(sampled.to_toml()))
    assert back.methods[0].chip_sample and back.digest() == sampled.digest()


def test_chip_sample_needs_a_stochgrasp_adapter(adapters):
    cfg = MonteCarloConfig(methods=[MethodSpec("g", adapters["grasp"], chip_sample=True)], n_chips=1, times=[1.0])
    with pytest.raises(ValueError, match=r"method 'g': chip_sample .* is 'grasp'; drop chip_sample"):
        cfg.validate()


def test_cli_flag_marks_the_named_methods(adapters):
    from analog_peft.cli import _chip_sampled

    methods = [{"name": "a@0", "adapter": "x"}, {"name": "a@1", "adapter": "y"}, {"name": "b", "adapter": "z"}]
    assert [m["chip_sample"] for m in _chip_sampled(methods, "a")] == [True, True, False]
    with pytest.raises(ValueError, match="--chip-sample c: no such method"):
        _chip_sampled(methods, "c")
