"""The main job (``make demo``): a small but real end-to-end run on the real MiniLM-L6 weights and SST-2.

1. convert MiniLM-L6 to analog tiles (``mapped`` preset) and print the conversion report, then program a
   few PCM chips and print each chip's relative output error at 1 s / 1 day / 1 year;
2. train GRASP (K = 16) and the head-only baseline on a CPU-sized SST-2 subset (``noise_eta > 0`` puts
   relative-Gaussian base-weight noise in the loop: at this budget η = 0.005 costs GRASP ~6 points);
3. chip Monte Carlo of the trained adapter and the head-only baseline under PCM noise and drift;
4. write the HTML + Markdown report.

Sizes are chosen to finish in a few minutes on 2 CPU cores; every knob is an argument.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from analog_peft.chips import ChipProgrammer
from analog_peft.convert import convert
from analog_peft.logs import get_logger
from analog_peft.models import load_classifier, load_tokenizer
from analog_peft.tasks import load_split
from device_models.units import DAY

log = get_logger("demo")


def output_error(reference: torch.Tensor, output: torch.Tensor) -> float:
    """Relative error ``‖out − ref‖ / ‖ref‖`` of a model output."""
    return float((output - reference).norm() / reference.norm())


def conversion_demo(
    out_dir: Path, model_name: str, device_model: str, n_chips: int, seed: int, rpu: str = "mapped"
) -> dict:
    """Convert, print the report, program ``n_chips`` chips and print per-chip output errors."""
    tok = load_tokenizer(model_name)
    data = load_split("sst2", "dev", max_examples=32, seed=seed)
    batch = tok(list(data.texts), padding=True, truncation=True, max_length=64, return_tensors="pt")
    valid = batch["attention_mask"].bool()
    model = load_classifier(model_name, num_labels=2, seed=seed)
    base = model.base_model
    with torch.no_grad():
        reference = base(**batch).last_hidden_state[valid]
    report = convert(model, rpu)
    log.info(report.table())
    report.to_json(str(out_dir / "conversion_report.json"))
    chips = ChipProgrammer(model, device_model, seed=seed)
    rows = []
    for chip in range(n_chips):
        start = time.perf_counter()
        chips.program(chip)
        for t in (1.0, DAY, 365 * DAY):
            chips.drift(t)
            with torch.no_grad(), chips.seeded_forward("demo"):
                err = output_error(reference, base(**batch).last_hidden_state[valid])
            rows.append({"chip": chip, "t": t, "relative_output_error": err})
            log.info(f"chip {chip}  t = {t:>10.0f} s  relative error of the last hidden state: {err:.3f}")
        log.info(f"chip {chip}: programmed and drifted to 3 times in {time.perf_counter() - start:.2f} s")
    chips.reset()
    result = {"model": model_name, "device_model": device_model, "rpu": rpu, "chips": rows, "conversion": report.to_dict()["summary"]}
    (out_dir / "chips.json").write_text(json.dumps(result, indent=2))
    return result


def _best(out: Path, method: str) -> float:
    return float(json.loads((out / "train" / method / "summary.json").read_text())["metric"])


def run_demo(
    out_dir: str | Path = "runs/demo",
    model_name: str = "minilm-l6",
    device_model: str = "pcm",
    n_chips: int = 3,
    train_examples: int = 1000,
    eval_examples: int = 256,
    seed: int = 0,
    noise_eta: float = 0.0,
) -> Path:
    """Run the whole main job; returns the path of the HTML report."""
    from analog_peft.montecarlo.engine import MethodSpec, MonteCarloConfig, run_montecarlo
    from analog_peft.montecarlo.report import write_report
    from analog_peft.training import TrainConfig, train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info("== 1. conversion and chips ==")
    conversion_demo(out, model_name, device_model, n_chips, seed)

    noise = {"mode": "device", "device_model": {"name": "gaussian", "eta": noise_eta}} if noise_eta else {"mode": "none"}
    what = f"relative-Gaussian base-weight noise η={noise_eta:g} in the loop" if noise_eta else "no noise in the loop"
    log.info(f"\n== 2. training GRASP (K=16) and the head-only baseline ({what}) ==")
    runs = {}
    for method, options in (("grasp", {"k": 16}), ("head", {})):
        cfg = TrainConfig(
            model=model_name, task="sst2", method=method, method_options=options, rpu="ideal", noise=noise,
            seed=seed, epochs=1, batch_size=16, lr=1e-2, head_lr=1e-2, train_examples=train_examples,
            eval_examples=eval_examples, out_dir=str(out / "train" / method), progress=False,
        )
        result = train(cfg)
        runs[method] = out / "train" / method / "adapter" / "best"
        head = result.summary["head"]
        log.info(f"{method}: dev {result.metric_name} = {result.best_metric:.4f} "
              f"({result.summary['trainable_params']['trainable']:,} trainable parameters; head pooling "
              f"{head['pooling']}: {head['reason']})")
    log.info(f"GRASP - head-only on the {eval_examples} dev sentences: "
          f"{100 * (_best(out, 'grasp') - _best(out, 'head')):+.1f} points")

    log.info(f"\n== 3. chip Monte Carlo ({device_model}, {n_chips} chips, periphery deployment) ==")
    mc = MonteCarloConfig(
        methods=[MethodSpec(name, str(path)) for name, path in runs.items()],
        base_model=model_name, task="sst2", max_examples=eval_examples, device_model=device_model, rpu="mapped",
        n_chips=n_chips, times=[1.0, 3600.0, DAY, 365 * DAY], seed=seed, run="demo",
    )
    df = run_montecarlo(mc, out / "montecarlo")
    acc = df[df.metric == "accuracy"].groupby(["method", "t_label"], sort=False)["value"].mean()
    log.info(acc.to_string())

    log.info("\n== 4. report ==")
    files = write_report(out / "montecarlo")
    log.info(files)
    return Path(out / "montecarlo" / "report" / "report.html")
