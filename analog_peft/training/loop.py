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
    session = _Session(_coerce(config))
    session.build_model()
    session.build_optimizer()
    if session.loop():
        return session.result(interrupted=True)
    return session.finish()


class _Session:
    """One training run, in phases: prepare (data, run directory) → build the model → build the optimizer →
    loop (steps, evaluations, checkpoints) → finish (summary). ``state`` is what a checkpoint saves."""

    def __init__(self, config: TrainConfig) -> None:
        from analog_peft.models import load_tokenizer
        from analog_peft.training.setup import check_task_model, load_task_data, resolve_task

        self.config, self.task = resolve_task(config)
        check_task_model(self.config, self.task)
        self.tokenizer = load_tokenizer(self.config.model)
        self.data = load_task_data(self.config, self.task, self.tokenizer)
        if not self.data.train:
            raise ConfigError("the training split is empty after subsampling")
        self.run_dir = Path(self.config.out_dir)
        self.resume = self.config.resume and has_trainer_state(self.run_dir)
        if self.resume:
            _check_resumable(self.config, self.run_dir)
        else:
            _clean_run_dir(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config.to_toml(self.run_dir / "train_config.toml")
        if self.config.num_threads:
            torch.set_num_threads(self.config.num_threads)
        self.device = torch.device(self.config.torch_device)
        self.logger = JsonlLogger(self.run_dir / "log.jsonl")
        self.state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best_metric": None, "best_step": None,
                                      "wall_time_s": 0.0, "last_metrics": {}}

    def batches(self, epoch: int = 0, start: int = 0) -> Any:
        from analog_peft.tasks import batches

        return batches(self.data.train, self.config.batch_size, epoch=epoch, seed=self.config.seed, start=start,
                       collate_fn=self.data.collate)

    # -- phases ---------------------------------------------------------------------------------------

    def build_model(self) -> None:
        """The base (converted, calibrated), the adapter (attached, or the checkpoint's) and the noise injector."""
        from analog_peft.training.setup import attach_method, convert_base, load_base

        config, run_dir = self.config, self.run_dir
        self.model = load_base(config, self.task)
        self.head = head_record(self.model)
        convert_base(self.model, config)
        record_of(self.model).save(run_dir)
        if self.resume:
            load_calibration(self.model, run_dir)
        elif config.base == "standard":
            from analog_peft.convert import calibrate_input_ranges

            calib = list(self.batches())[:4]
            calibrate_input_ranges(self.model, [{k: v for k, v in b.items() if k != "labels"} for b in calib])
            save_calibration(self.model, run_dir)
        self.adapted = (load_adapter(self.model, run_dir / STATE_DIR / "adapter") if self.resume
                        else attach_method(self.model, config))
        self.adapted.to(self.device)
        if not self.resume and hasattr(self.adapted, "calibrate"):  # StochGRASP: derive σ_target on clean weights
            first = next(iter(self.batches()))
            self.adapted.eval()
            self.adapted.calibrate(**{k: v.to(self.device) for k, v in first.items() if k != "labels"})
        self.injector = NoiseInjector(self.model, config.noise, config.seed)

    def build_optimizer(self) -> None:
        """AdamW + the LR schedule, restored with the step counters on resume; logs ``start`` or ``resume``."""
        from analog_peft.tasks import num_batches

        config = self.config
        self.steps_per_epoch = num_batches(len(self.data.train), config.batch_size)
        self.total = config.max_steps or config.epochs * self.steps_per_epoch
        warmup = config.warmup_steps or round(config.warmup_ratio * self.total)
        self.optimizer = torch.optim.AdamW(_param_groups(self.adapted, config), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer,
                                                           lr_lambda(config.schedule, self.total, warmup))
        self.trainable = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.summary_params = self.adapted.trainable_summary()
        if self.resume:
            restore_optimizer(self.run_dir, self.optimizer, self.scheduler)
            self.state.update(read_state(self.run_dir))
            drop_after(self.logger.path, self.state["step"])  # the steps after the checkpoint are redone, re-logged
            self.logger.log("resume", step=self.state["step"], epoch=self.state["epoch"], batch=self.state["batch"])
        else:
            self.logger.log("start", config=config.to_dict(), train_examples=len(self.data.train),
                            eval_examples=len(self.data.eval_refs), total_steps=self.total,
                            trainable=self.summary_params, head=self.head.to_dict() if self.head else None)
        self.session_start = time.perf_counter()
        self.wall_before = float(self.state["wall_time_s"])

    def loop(self) -> bool:
        """Train to ``total`` steps (evaluating and checkpointing as configured); True when stopped early."""
        from tqdm.auto import tqdm

        config, state = self.config, self.state
        bar = tqdm(total=self.total, initial=state["step"], desc=f"train {config.method}",
                   disable=not config.progress, dynamic_ncols=True)
        self.window = _LossWindow()
        try:
            while state["step"] < self.total:
                for batch in self.batches(epoch=state["epoch"], start=state["batch"]):
                    stop = self.step(batch, bar)
                    if stop is not None:
                        return stop
        except KeyboardInterrupt:
            self.optimizer.zero_grad(set_to_none=True)
            self.checkpoint()
            self.logger.log("stop", step=state["step"], reason="KeyboardInterrupt")
            raise
        finally:
            bar.close()
        return False

    def step(self, batch: dict[str, torch.Tensor], bar: Any) -> bool | None:
        """One optimiser step and what follows it; True: stop (``stop_after_steps``), False: done, None: go on."""
        from analog_peft.chips import derive_seed

        config, state = self.config, self.state
        step, epoch = state["step"], state["epoch"]
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        self.injector.train_mode()
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(derive_seed(config.seed, "step", step))
            with self.injector.step(step):
                out = self.adapted(**{k: v.to(self.device) for k, v in batch.items()})
                loss = out.loss + self.adapted.regularization_loss().to(out.loss.device)
                loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trainable, config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        state["batch"] += 1
        self.window.add(float(loss.detach()), int(batch["input_ids"].shape[0]))
        bar.update(1)
        if state["step"] % config.log_every == 0 or state["step"] == self.total:
            avg, rate = self.window.flush()
            bar.set_postfix(loss=f"{avg:.4f}", samples_s=f"{rate:.1f}", epoch=epoch)
            self.logger.log("train", step=state["step"], epoch=epoch, loss=avg,
                            lr=self.scheduler.get_last_lr()[0], samples_per_s=rate, **_spread_stats(self.adapted))
        end_of_epoch = state["batch"] >= self.steps_per_epoch
        done = state["step"] >= self.total
        if end_of_epoch:
            state["epoch"], state["batch"] = epoch + 1, 0
        if end_of_epoch or done or (config.eval_every and state["step"] % config.eval_every == 0):
            self.evaluate()
            self.checkpoint()
        elif config.save_every and state["step"] % config.save_every == 0:
            self.checkpoint()
        if done:
            return False
        if config.stop_after_steps and state["step"] >= config.stop_after_steps:
            self.checkpoint()
            self.logger.log("stop", step=state["step"], reason="stop_after_steps")
            return True
        return None  # at an epoch's end the batch iterator is exhausted: loop() starts the next epoch

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self.session_start

    def checkpoint(self) -> None:
        self.state["wall_time_s"] = self.wall()
        save_trainer_state(self.run_dir, self.adapted, self.optimizer, self.scheduler, self.state)

    def evaluate(self) -> dict[str, Any]:
        """Score the eval split, keep ``adapter/last`` (and ``best`` when improved), log ``eval``."""
        from analog_peft.training.evaluate import evaluate

        config, state, run_dir = self.config, self.state, self.run_dir
        self.adapted.eval()
        t0 = time.perf_counter()
        metrics = evaluate(self.adapted, self.task, self.data, self.tokenizer, batch_size=config.eval_batch_size,
                           generation=config.generation, max_length=config.max_length, device=self.device,
                           progress=config.progress,
                           where=f"evaluation of method {config.method!r} at step {state['step']}")
        preds = metrics.pop("predictions", None)
        value = float(metrics[self.task.metric])
        improved = state["best_metric"] is None or value > state["best_metric"]
        save_adapter(self.adapted, run_dir / "adapter" / "last")
        if improved:
            state["best_metric"], state["best_step"] = value, state["step"]
            save_adapter(self.adapted, run_dir / "adapter" / "best")
        if preds is not None:
            with (run_dir / "eval_predictions.jsonl").open("w") as f:
                for mr, p in zip(self.data.eval_inputs, preds, strict=True):
                    f.write(json.dumps({"mr": mr, "prediction": p}) + "\n")
        state["last_metrics"] = _scalar_metrics(metrics)
        self.logger.log("eval", step=state["step"], epoch=state["epoch"], split=config.eval_split,
                        metrics=state["last_metrics"], best=state["best_metric"],
                        eval_time_s=time.perf_counter() - t0)
        return metrics

    def result(self, interrupted: bool, summary: dict[str, Any] | None = None) -> TrainResult:
        s = self.state
        return TrainResult(self.run_dir, self.task.metric, s["best_metric"], s["last_metrics"], s["step"], interrupted,
                           summary or {})

    def finish(self) -> TrainResult:
        """Write ``summary.json`` (with the best adapter's digital metric) and log it."""
        from analog_peft.versions import package_versions

        config, state, data = self.config, self.state, self.data
        summary = {
            "task": self.task.name,
            "data": data.record,
            "model": config.model,
            "method": config.method,
            "base": config.base,
            "noise": config.to_dict()["noise"],
            "seed": config.seed,
            "metric_name": self.task.metric,
            "metric": state["best_metric"],
            "best_step": state["best_step"],
            "last_metrics": state["last_metrics"],
            "digital_dev_metric": _digital_metric(config, self.run_dir, self.task, data, self.tokenizer,
                                                  state["best_metric"]),
            "trainable_params": self.summary_params,
            "head": self.head.to_dict() if self.head else None,
            "steps": state["step"],
            "epochs": self.total / self.steps_per_epoch,
            "train_examples": len(data.train),
            "eval_examples": len(data.eval_refs),
            "eval_split": config.eval_split,
            "wall_time_s": self.wall(),
            "torch_threads": torch.get_num_threads(),
            "versions": package_versions(),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        self.logger.log("summary", **{k: v for k, v in summary.items() if k != "noise"})
        return self.result(False, summary)


class _LossWindow:
    """The mean loss and samples/s since the last logged step."""

    def __init__(self) -> None:
        self.loss, self.n, self.t = 0.0, 0, time.perf_counter()

    def add(self, loss: float, n: int) -> None:
        self.loss += loss * n
        self.n += n

    def flush(self) -> tuple[float, float]:
        dt = max(time.perf_counter() - self.t, 1e-9)
        out = (self.loss / max(self.n, 1), self.n / dt)
        self.loss, self.n, self.t = 0.0, 0, time.perf_counter()
        return out


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
    adapted = load_adapter(model, best).to(config.torch_device)
    metrics = evaluate(adapted, task, data, tokenizer, batch_size=config.eval_batch_size,
                       generation=config.generation, max_length=config.max_length, device=config.torch_device)
    return {"value": float(metrics[task.metric]), "how": "best adapter loaded on the digital base"}
