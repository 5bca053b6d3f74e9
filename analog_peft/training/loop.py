"""``train(config) -> TrainResult``: the hardware-aware adapter training loop.

Determinism: every random draw of step ``s`` (dropout, StochGRASP's ε, aihwkit's weight modifier) comes from
torch's global RNG re-seeded with ``derive_seed(seed, "step", s)`` inside a forked RNG; the batch order of
epoch ``e`` is a function of ``(seed, e)``; injected device noise is seeded by ``(seed, step, tile)``. So a
run stopped after any step and resumed from ``trainer_state/`` ends with bit-identical adapter tensors.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from analog_peft.calibration import load_calibration, save_calibration
from analog_peft.conversion_config import record_of
from analog_peft.heads import head_record
from analog_peft.methods import load_adapter
from analog_peft.training.checkpoint import (
    STATE_DIR,
    has_trainer_state,
    read_state,
    restore_optimizer,
    save_adapter,
    save_trainer_state,
)
from analog_peft.training.config import ConfigError, TrainConfig
from analog_peft.training.noise import NoiseInjector
from analog_peft.training.runlog import JsonlLogger, drop_after
from analog_peft.training.schedule import lr_lambda

#: Fields that may change between an interrupted run and its resumption.
RESUME_FREE = {"stop_after_steps", "progress", "resume", "num_threads", "out_dir"}


@dataclass
class TrainResult:
    """What :func:`train` returns; ``summary`` is also written to ``out_dir/summary.json``."""

    out_dir: Path
    metric_name: str
    best_metric: float | None
    last_metrics: dict[str, Any]
    steps: int
    interrupted: bool = False
    summary: dict[str, Any] = field(default_factory=dict)


def _coerce(config: TrainConfig | dict | str | Path) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    return TrainConfig.from_toml(config)


def _check_resumable(config: TrainConfig, run_dir: Path) -> None:
    saved = TrainConfig.from_toml(run_dir / "train_config.toml").to_dict()
    now = config.to_dict()
    diff = sorted(k for k in now if k not in RESUME_FREE and now[k] != saved.get(k))
    if diff:
        raise ConfigError(
            f"{run_dir} holds an interrupted run with a different config (fields {diff}); resume with the "
            "same config, choose another out_dir, or set resume = false to start over"
        )


def _param_groups(adapted: Any, config: TrainConfig) -> list[dict[str, Any]]:
    groups = adapted.param_groups(config.lr)
    if config.head_lr:
        head = {id(p) for p in adapted.head_parameters()}
        groups = [{**g, "params": [p for p in g["params"] if id(p) not in head]} for g in groups]
        groups.append({"params": [p for p in adapted.head_parameters() if p.requires_grad], "lr": config.head_lr})
    return [g for g in groups if g["params"]]


def _spread_stats(adapted: Any) -> dict[str, float]:
    """StochGRASP's mean learned spread σ_γ, its mean target and the KL penalty (empty for other methods)."""
    if not hasattr(adapted, "spreads"):
        return {}
    with torch.no_grad():
        sig = torch.cat([g.flatten() for g, _ in adapted.spreads().values()])
        tgt = torch.cat([g.flatten() for g, _ in adapted.sigma_targets().values()])
        reg = float(adapted.regularization_loss())
    return {"sigma_gamma_mean": float(sig.mean()), "sigma_target_gamma_mean": float(tgt.mean()), "kl_loss": reg}


def _clean_run_dir(run_dir: Path) -> None:
    for name in ("log.jsonl", "summary.json", "adapter", STATE_DIR, "eval_predictions.jsonl",
                 "analog_calibration.safetensors"):
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def train(config: TrainConfig | dict | str | Path) -> TrainResult:
    """Train the configured adapter and write the run directory (see ``docs/training.md``).

    Everything that can be checked without training is checked first: config values, task/model
    compatibility, data files and columns (:class:`ConfigError`, ``FileNotFoundError``, ``ValueError``).
    """
    from tqdm.auto import tqdm

    from analog_peft.chips import derive_seed
    from analog_peft.models import load_tokenizer
    from analog_peft.tasks import batches as make_batches
    from analog_peft.tasks import num_batches
    from analog_peft.training.evaluate import evaluate
    from analog_peft.training.setup import (
        attach_method,
        check_task_model,
        convert_base,
        load_base,
        load_task_data,
        resolve_task,
    )
    from analog_peft.versions import package_versions

    config, task = resolve_task(_coerce(config))
    check_task_model(config, task)
    tokenizer = load_tokenizer(config.model)
    data = load_task_data(config, task, tokenizer)
    if not data.train:
        raise ConfigError("the training split is empty after subsampling")

    run_dir = Path(config.out_dir)
    resume = config.resume and has_trainer_state(run_dir)
    if resume:
        _check_resumable(config, run_dir)
    else:
        _clean_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.to_toml(run_dir / "train_config.toml")
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    device = torch.device(config.device)
    logger = JsonlLogger(run_dir / "log.jsonl")

    model = load_base(config, task)
    head = head_record(model)
    convert_base(model, config)
    record_of(model).save(run_dir)
    collate = data.collate
    if resume:
        load_calibration(model, run_dir)
    elif config.base == "standard":
        from analog_peft.convert import calibrate_input_ranges

        calib = list(make_batches(data.train, config.batch_size, seed=config.seed, collate_fn=collate))[:4]
        calibrate_input_ranges(model, [{k: v for k, v in b.items() if k != "labels"} for b in calib])
        save_calibration(model, run_dir)
    adapted = load_adapter(model, run_dir / STATE_DIR / "adapter") if resume else attach_method(model, config)
    adapted.to(device)
    if not resume and hasattr(adapted, "calibrate"):  # StochGRASP: derive σ_target on clean weights
        first = next(make_batches(data.train, config.batch_size, seed=config.seed, collate_fn=collate))
        adapted.eval()
        adapted.calibrate(**{k: v.to(device) for k, v in first.items() if k != "labels"})
    injector = NoiseInjector(model, config.noise, config.seed)

    steps_per_epoch = num_batches(len(data.train), config.batch_size)
    total = config.max_steps or config.epochs * steps_per_epoch
    warmup = config.warmup_steps or round(config.warmup_ratio * total)
    optimizer = torch.optim.AdamW(_param_groups(adapted, config), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.schedule, total, warmup))
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    summary_params = adapted.trainable_summary()
    state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best_metric": None, "best_step": None,
                             "wall_time_s": 0.0, "last_metrics": {}}
    if resume:
        restore_optimizer(run_dir, optimizer, scheduler)
        state.update(read_state(run_dir))
        drop_after(logger.path, state["step"])  # the steps after the checkpoint are redone and logged again
        logger.log("resume", step=state["step"], epoch=state["epoch"], batch=state["batch"])
    else:
        logger.log("start", config=config.to_dict(), train_examples=len(data.train),
                   eval_examples=len(data.eval_refs), total_steps=total, trainable=summary_params,
                   head=head.to_dict() if head else None)

    metric_name = task.metric
    session_start = time.perf_counter()
    wall_before = float(state["wall_time_s"])

    def wall() -> float:
        return wall_before + time.perf_counter() - session_start

    def checkpoint() -> None:
        state["wall_time_s"] = wall()
        save_trainer_state(run_dir, adapted, optimizer, scheduler, state)

    def run_eval() -> dict[str, Any]:
        adapted.eval()
        t0 = time.perf_counter()
        metrics = evaluate(adapted, task, data, tokenizer, batch_size=config.eval_batch_size,
                           generation=config.generation, max_length=config.max_length, device=device,
                           progress=config.progress,
                           where=f"evaluation of method {config.method!r} at step {state['step']}")
        preds = metrics.pop("predictions", None)
        value = float(metrics[metric_name])
        improved = state["best_metric"] is None or value > state["best_metric"]
        save_adapter(adapted, run_dir / "adapter" / "last")
        if improved:
            state["best_metric"], state["best_step"] = value, state["step"]
            save_adapter(adapted, run_dir / "adapter" / "best")
        if preds is not None:
            with (run_dir / "eval_predictions.jsonl").open("w") as f:
                for mr, p in zip(data.eval_inputs, preds, strict=True):
                    f.write(json.dumps({"mr": mr, "prediction": p}) + "\n")
        state["last_metrics"] = _scalar_metrics(metrics)
        logger.log("eval", step=state["step"], epoch=state["epoch"], split=config.eval_split,
                   metrics=state["last_metrics"], best=state["best_metric"], eval_time_s=time.perf_counter() - t0)
        return metrics

    bar = tqdm(total=total, initial=state["step"], desc=f"train {config.method}", disable=not config.progress,
               dynamic_ncols=True)
    cuda = [device.index or 0] if device.type == "cuda" else []
    window_loss, window_n, window_samples, window_t = 0.0, 0, 0, time.perf_counter()
    interrupted = False
    try:
        while state["step"] < total and not interrupted:
            epoch = state["epoch"]
            for batch in make_batches(data.train, config.batch_size, epoch=epoch, seed=config.seed,
                                      start=state["batch"], collate_fn=collate):
                step = state["step"]
                injector.train_mode()
                with torch.random.fork_rng(devices=cuda):
                    torch.manual_seed(derive_seed(config.seed, "step", step))
                    with injector.step(step):
                        out = adapted(**{k: v.to(device) for k, v in batch.items()})
                        loss = out.loss + adapted.regularization_loss().to(out.loss.device)
                        loss.backward()
                if config.grad_clip:
                    torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["batch"] += 1
                n = int(batch["input_ids"].shape[0])
                window_loss += float(loss.detach()) * n
                window_n += n
                window_samples += n
                bar.update(1)
                if state["step"] % config.log_every == 0 or state["step"] == total:
                    dt = max(time.perf_counter() - window_t, 1e-9)
                    avg = window_loss / max(window_n, 1)
                    rate = window_samples / dt
                    bar.set_postfix(loss=f"{avg:.4f}", samples_s=f"{rate:.1f}", epoch=epoch)
                    logger.log("train", step=state["step"], epoch=epoch, loss=avg, lr=scheduler.get_last_lr()[0],
                               samples_per_s=rate, **_spread_stats(adapted))
                    window_loss, window_n, window_samples, window_t = 0.0, 0, 0, time.perf_counter()
                end_of_epoch = state["batch"] >= steps_per_epoch
                done = state["step"] >= total
                if end_of_epoch:
                    state["epoch"], state["batch"] = epoch + 1, 0
                if end_of_epoch or done or (config.eval_every and state["step"] % config.eval_every == 0):
                    run_eval()
                    checkpoint()
                elif config.save_every and state["step"] % config.save_every == 0:
                    checkpoint()
                if done:
                    break
                if config.stop_after_steps and state["step"] >= config.stop_after_steps:
                    checkpoint()
                    logger.log("stop", step=state["step"], reason="stop_after_steps")
                    interrupted = True
                    break
    except KeyboardInterrupt:
        optimizer.zero_grad(set_to_none=True)
        checkpoint()
        logger.log("stop", step=state["step"], reason="KeyboardInterrupt")
        bar.close()
        raise
    bar.close()
    if interrupted:
        return TrainResult(run_dir, metric_name, state["best_metric"], state["last_metrics"], state["step"], True)

    summary = {
        "task": task.name,
        "data": data.record,
        "model": config.model,
        "method": config.method,
        "base": config.base,
        "noise": config.noise,
        "seed": config.seed,
        "metric_name": metric_name,
        "metric": state["best_metric"],
        "best_step": state["best_step"],
        "last_metrics": state["last_metrics"],
        "digital_dev_metric": _digital_metric(config, run_dir, task, data, tokenizer, state["best_metric"]),
        "trainable_params": summary_params,
        "head": head.to_dict() if head else None,
        "steps": state["step"],
        "epochs": total / steps_per_epoch,
        "train_examples": len(data.train),
        "eval_examples": len(data.eval_refs),
        "eval_split": config.eval_split,
        "wall_time_s": wall(),
        "torch_threads": torch.get_num_threads(),
        "versions": package_versions(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.log("summary", **{k: v for k, v in summary.items() if k != "noise"})
    return TrainResult(run_dir, metric_name, state["best_metric"], state["last_metrics"], state["step"], False, summary)


def _digital_metric(config: TrainConfig, run_dir: Path, task: Any, data: Any, tokenizer: Any,
                    best: float | None) -> dict[str, Any]:
    """The best adapter's metric on the digital base (the ideal preset's forward equals the digital one)."""
    if config.base in ("digital", "ideal"):
        return {"value": best, "how": f"{config.base} base: its clean forward is the digital forward"}
    from analog_peft.deploy import adapter_pooling
    from analog_peft.training.evaluate import evaluate
    from analog_peft.training.setup import load_base

    best = run_dir / "adapter" / "best"
    model = load_base(config, task, pooling=adapter_pooling(best))
    adapted = load_adapter(model, best).to(config.device)
    metrics = evaluate(adapted, task, data, tokenizer, batch_size=config.eval_batch_size,
                       generation=config.generation, max_length=config.max_length, device=config.device)
    return {"value": float(metrics[task.metric]), "how": "best adapter loaded on the digital base"}
