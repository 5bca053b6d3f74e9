"""``TrainConfig``: everything one training run needs, TOML round-trippable (saved as ``train_config.toml``)."""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from analog_peft import field_names
from analog_peft.heads import POOLINGS
from analog_peft.presets import PRESETS
from analog_peft.training import tomlio

NOISE_MODES = ("none", "device", "aihwkit_modifier")
RPU_CHOICES = ("auto", "digital", *PRESETS)
SCHEDULES = ("linear", "cosine", "constant")
HEAD_ONLY = "head"
PEFT = "peft"
_INT_FIELDS = ("seed", "epochs", "max_steps", "batch_size", "eval_batch_size", "max_length", "warmup_steps",
               "train_examples", "eval_examples", "eval_every", "save_every", "log_every", "num_threads",
               "stop_after_steps", "num_labels")
#: the fields that say which data a run uses (shared with the Monte Carlo engine's ``--data-config``)
DATA_FIELDS = ("task", "data_dir", "hf_dataset", "train_file", "eval_file", "text_column", "text_pair_column",
               "label_column", "task_type", "labels", "num_labels", "data_name")
_FLOAT_FIELDS = ("lr", "head_lr", "weight_decay", "grad_clip", "warmup_ratio")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_types(config: TrainConfig) -> None:
    """Integer fields hold integers, float fields finite numbers (``--set batch_size=2.5`` / ``lr=inf``)."""
    for name in _INT_FIELDS:
        value = getattr(config, name)
        if not _is_int(value):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
    for name in _FLOAT_FIELDS:
        value = getattr(config, name)
        if not _is_number(value) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    for name in ("head_lr", "weight_decay", "grad_clip"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(config, name)!r}")
    if not isinstance(config.labels, list | tuple) or not all(isinstance(x, str) for x in config.labels):
        raise ConfigError(f"labels must be a list of label names (strings), got {config.labels!r}")


def _check_data(config: TrainConfig) -> None:
    """The data options of a known task (an unknown task name is reported by ``train``)."""
    from analog_peft.tasks import DataError, get_task
    from analog_peft.tasks.userdata import check_options

    try:
        spec = get_task(config.task)
    except ValueError:
        return
    if spec.kind == "generation":
        return
    if config.hf_dataset and (config.train_file or config.eval_file):
        raise ConfigError("set either hf_dataset or train_file / eval_file, not both")
    try:
        check_options(config.data_options())
    except DataError as exc:
        raise ConfigError(str(exc)) from exc


_T = TypeVar("_T")


def _current_names(data: dict[str, Any], renames: dict[str, str], what: str) -> dict[str, Any]:
    try:
        return field_names.current_names(data, renames, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _from_table(cls: type[_T], value: Any, what: str, example: str) -> _T:
    """``cls`` from itself, its TOML table or None (its defaults); a non-table or an unknown key is named."""
    if isinstance(value, cls):
        return value
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{what} must be a table such as {example}, got {value!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(value or {}) - known)
    if unknown:
        raise ConfigError(f"unknown {what} option(s) {unknown}; known: {sorted(known)}")
    return cls(**(value or {}))


@dataclass
class NoiseConfig:
    """Device noise in the training loop (the ``noise`` table of a :class:`TrainConfig`).

    ``mode``: ``none``; ``device`` (every step runs on a freshly programmed chip of device model ``device_model``
    read at ``t`` seconds, with global drift compensation unless ``compensate_drift`` is false); or
    ``aihwkit_modifier`` (aihwkit's training weight modifier ``modifier``, ``add_normal`` or ``mult_normal``,
    σ = ``eta`` relative to max|W|).
    """

    mode: str = "none"
    device_model: str | dict[str, Any] | None = None
    t: float = 0.0
    eta: float = 0.0
    compensate_drift: bool = True
    modifier: str = "add_normal"

    @classmethod
    def coerce(cls, value: NoiseConfig | dict[str, Any] | None) -> NoiseConfig:
        """A config from itself, its table (unknown keys are named), or None (no noise)."""
        if isinstance(value, dict):
            value = _current_names(value, field_names.NOISE, "noise")
        return _from_table(cls, value, "noise", '{mode = "device", device_model = "pcm"}')

    def validate(self, rpu: str, base: str) -> None:
        if self.mode not in NOISE_MODES:
            raise ConfigError(f"noise.mode must be one of {NOISE_MODES}, got {self.mode!r}")
        if self.mode == "device" and not self.device_model:
            raise ConfigError('noise.mode = "device" needs noise.device_model (e.g. "pcm" or {name = "gaussian", eta = 0.01})')
        if self.mode == "aihwkit_modifier" and not (_is_number(self.eta) and math.isfinite(self.eta) and self.eta > 0):
            raise ConfigError(
                f'noise.mode = "aihwkit_modifier" needs a finite noise.eta > 0 (σ relative to max|W|), got {self.eta!r}'
            )
        if self.mode != "none" and rpu == "digital":
            raise ConfigError(f'noise.mode = "{self.mode}" needs an analog base: set rpu = "ideal" (or "auto")')
        if self.mode == "device":
            _check_device_noise(self, base)


def _check_device_noise(noise: NoiseConfig, base: str) -> None:
    """``noise.device_model`` must build a device model, ``noise.t`` be a time it can be read at; warn on ``ideal``."""
    import device_models
    from analog_peft.devicecheck import warn_if_layer_mapped

    try:
        dm = device_models.get(noise.device_model)
    except (device_models.DeviceModelError, TypeError) as exc:
        raise ConfigError(f"noise.device_model: {exc}") from exc
    t = noise.t
    if not _is_number(t):
        raise ConfigError(f"noise.t must be a number of seconds, got {t!r}")
    try:
        if t:
            dm.check_time(float(t))
    except device_models.DeviceModelError as exc:
        raise ConfigError(f"noise.t: {exc}") from exc
    warn_if_layer_mapped(dm, base, "training noise")


class ConfigError(ValueError):
    """An invalid training configuration (raised before any model or data is loaded)."""


def _check_peft(config: TrainConfig) -> None:
    """``method = "peft"`` takes a buildable ``peft_config`` and no ``method_options`` (and vice versa)."""
    if not isinstance(config.peft_config, dict):
        raise ConfigError(f"peft_config must be a table (peft_type and its fields), got {config.peft_config!r}; in "
                          "TOML write regexes as 'literal strings' (a \\ in a \"basic string\" is an escape)")
    if config.method != PEFT:
        raise ConfigError(f'peft_config is used only with method = "peft", not {config.method!r}: set method = '
                          '"peft" or remove peft_config')
    if config.method_options:
        raise ConfigError('method "peft" takes its options from peft_config, not method_options: move them there')
    if not config.peft_config:
        raise ConfigError('method = "peft" needs peft_config, e.g. peft_config = {peft_type = "LORA", r = 8, '
                          'target_modules = ["query", "value"]}')
    from analog_peft.methods import AdapterError
    from analog_peft.peft_bridge.adapter import peft_config_from_dict

    try:
        peft_config_from_dict(copy.deepcopy(config.peft_config))
    except AdapterError as exc:
        raise ConfigError(str(exc)) from None


@dataclass
class GenerationConfig:
    """Decoding of generation tasks (E2E): beam width (1 = greedy), tokens generated at most, MRs per batch."""

    num_beams: int = 1
    max_new_tokens: int = 64
    batch_size: int = 16

    @classmethod
    def coerce(cls, value: GenerationConfig | dict[str, Any] | None) -> GenerationConfig:
        """A config from itself or its table; unknown keys and values that are not positive integers are named."""
        out = _from_table(cls, value, "generation", "{num_beams = 4}")
        for name in (f.name for f in fields(cls)):
            if not _is_int(getattr(out, name)) or getattr(out, name) < 1:
                raise ConfigError(f"generation.{name} must be a positive integer, got {getattr(out, name)!r}")
        return out


@dataclass
class TrainConfig:
    """One training run: model, task, method, analog base and noise, budget, data and output.

    Args:
        model: Model alias (``minilm-l6``, ``smollm2-135m``), Hugging Face name or local directory.
        task: A GLUE task (``cola``, ``sst2``, ``mrpc``, ``stsb``, ``qqp``, ``mnli``, ``qnli``, ``rte``, ``wnli``),
            ``custom`` (your own files, see ``train_file``) or ``e2e`` (generation).
        method: Adapter method (``grasp``, ``stochgrasp``, ``lora``, ``bitfit``, ``ia3``, ``para``, ``full``),
            ``head`` (train only the task head: the head-only baseline) or ``peft`` (Hugging Face PEFT).
        method_options: Fields of the method's config dataclass (e.g. ``{"k": 16}``; StochGRASP
            ``{"sigma_target": {"device_model": "pcm", "t": 86400.0}}``).
        peft_config: With ``method = "peft"``: a PEFT config, ``peft_type`` plus its fields (e.g.
            ``{peft_type = "LORA", r = 8, target_modules = ["query", "value"]}``); ``task_type`` defaults to
            the model's (``SEQ_CLS`` / ``CAUSAL_LM``). The adapter is saved with PEFT's ``save_pretrained``.
        rpu: Base model: ``digital``; ``ideal`` / ``mapped`` / ``standard`` (converted to aihwkit analog tiles with that
            preset); ``auto`` = ``digital`` without noise injection, ``ideal`` with it.
        noise: Base-weight noise injected in the training loop, resampled every batch:
            ``{"mode": "none"}``; ``{"mode": "device", "device_model": <device_models name or dict>, "t": seconds}``
            (every batch programs a fresh chip from the device model and reads it at ``t``; drift
            compensation unless ``compensate_drift = false``); ``{"mode": "aihwkit_modifier", "eta": 0.02,
            "modifier": "add_normal" | "mult_normal"}`` (aihwkit's training weight modifier, σ = η·max|W|).
        seed: Seeds the head initialisation, the adapter's random choices, data subsampling, batch order,
            dropout, StochGRASP's samples and the injected noise.
        epochs / max_steps: Budget; ``max_steps > 0`` overrides ``epochs``.
        batch_size / eval_batch_size / max_length: Batching (``max_length`` truncates tokenised examples).
        lr / head_lr / weight_decay / grad_clip: AdamW; ``head_lr = 0`` uses ``lr`` for the head as well.
        schedule / warmup_ratio / warmup_steps: ``linear``, ``cosine`` or ``constant`` after linear warmup.
        train_split / eval_split: Splits (E2E: ``dev`` / ``test`` with the shared data, which has no train set).
        train_examples / eval_examples: Deterministic subsets (0 = all; for E2E these count MRs).
        data_dir: Data root or a GLUE-format TSV folder ("" = ``$ANALOG_PEFT_DATA`` or ``../shared/datasets``).
        hf_dataset: Load classification data from the Hugging Face hub instead (``"default"`` = the task's
            GLUE dataset, or ``"path"`` / ``"path/config"``); needs ``datasets`` and internet.
        text_column / label_column: Override the TSV/dataset columns (names, or 0-based indices as digits).
        train_file / eval_file: The user's own files (CSV, TSV, JSON Lines, Parquet) instead of the task's
            GLUE files; with ``task = "custom"`` they are required (``hf_dataset`` may stand in for them).
        text_pair_column: Second text column of sentence-pair data (tokenised as pairs).
        task_type: ``classification`` (default) or ``regression`` (one output, MSE loss, Pearson/Spearman)
            for ``custom``; a GLUE task's type is fixed.
        labels / num_labels: The label set of ``custom`` classification data (names in index order, or the
            number of integer classes); empty/0 = inferred from ``train_file`` and written back here.
        data_name: Display name of the data (default: the custom eval file's stem, else the task name).
        allow_decoder_classifier: Allow a causal LM with a new classification head for classification tasks.
        pooling: How token states reach the classification head (:mod:`analog_peft.heads`): ``auto``
            (the checkpoint's sentence-transformers pooling config, else a trained pooler, else mean),
            ``cls`` (first token through the pooler, which then trains with the head), ``mean``, ``last``.
        generation: E2E decoding: ``num_beams`` (1 = greedy), ``max_new_tokens``, ``batch_size``.
        out_dir: Run directory (config, adapters, log, summary, trainer state).
        eval_every / save_every / log_every: In optimiser steps (0 = evaluate only at the end of each epoch;
            the trainer state is always saved after each evaluation and on interruption).
        torch_device: ``cpu`` or ``cuda[:i]``. num_threads: torch CPU threads (0 = leave as is).
        stop_after_steps: Stop (as if interrupted) after this many steps, saving the trainer state (tests).
        resume: Continue from ``out_dir/trainer_state`` if it exists (the saved config must match).
        progress: Show tqdm progress bars.
    """

    model: str = "minilm-l6"
    task: str = "sst2"
    method: str = "grasp"
    method_options: dict[str, Any] = field(default_factory=dict)
    peft_config: dict[str, Any] = field(default_factory=dict)
    rpu: str = "auto"
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    seed: int = 0
    epochs: int = 1
    max_steps: int = 0
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 128
    lr: float = 1e-2
    head_lr: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    schedule: str = "linear"
    warmup_ratio: float = 0.06
    warmup_steps: int = 0
    train_split: str = "train"
    eval_split: str = "dev"
    train_examples: int = 0
    eval_examples: int = 0
    data_dir: str = ""
    hf_dataset: str = ""
    text_column: str = ""
    label_column: str = ""
    train_file: str = ""
    eval_file: str = ""
    text_pair_column: str = ""
    task_type: str = ""
    labels: list[str] = field(default_factory=list)
    num_labels: int = 0
    data_name: str = ""
    allow_decoder_classifier: bool = False
    pooling: str = "auto"
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    out_dir: str = "runs/train"
    eval_every: int = 0
    save_every: int = 0
    log_every: int = 10
    torch_device: str = "cpu"
    num_threads: int = 0
    stop_after_steps: int = 0
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self.noise = NoiseConfig.coerce(self.noise)
        self.generation = GenerationConfig.coerce(self.generation)
        self.method_options = dict(self.method_options or {})
        self.peft_config = dict(self.peft_config or {}) if isinstance(self.peft_config, dict | None) else self.peft_config
        self.labels = list(self.labels) if isinstance(self.labels, list | tuple) else self.labels
        self.validate()

    # -- validation ---------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ConfigError` for invalid values (cheap: loads nothing)."""
        from analog_peft.methods import METHODS, config_from_dict

        _check_types(self)
        if self.method == PEFT or self.peft_config:
            _check_peft(self)
        elif self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; choose from {sorted(METHODS) + [PEFT]}")
        else:
            try:
                config_from_dict({"method": self.method, **self.method_options})
            except Exception as exc:  # AdapterError / TypeError from unknown fields
                raise ConfigError(f"method_options for {self.method!r}: {exc}") from exc
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.rpu not in RPU_CHOICES:
            raise ConfigError(f"rpu must be one of {RPU_CHOICES}, got {self.rpu!r}")
        self.noise.validate(self.rpu, self.base)
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("batch_size", "eval_batch_size", "max_length", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("epochs", "max_steps", "train_examples", "eval_examples", "eval_every", "save_every",
                     "warmup_steps", "stop_after_steps", "num_threads"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.epochs == 0 and self.max_steps == 0:
            raise ConfigError("set epochs >= 1 or max_steps >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        if self.torch_device not in ("cpu", "cuda") and not self.torch_device.startswith("cuda:"):
            raise ConfigError(f"torch_device must be 'cpu' or 'cuda[:i]', got {self.torch_device!r}")
        _check_data(self)

    # -- derived ------------------------------------------------------------------------------------
    @property
    def base(self) -> str:
        """The resolved base: ``digital``, ``ideal`` or ``standard``."""
        if self.rpu == "auto":
            return "digital" if self.noise.mode == "none" else "ideal"
        return self.rpu

    def data_options(self) -> Any:
        """The data fields as a :class:`~analog_peft.tasks.DataOptions`."""
        from analog_peft.tasks import DataOptions

        return DataOptions(task=self.task, train_file=self.train_file, eval_file=self.eval_file,
                           text_column=self.text_column, text_pair_column=self.text_pair_column,
                           label_column=self.label_column, task_type=self.task_type, labels=tuple(self.labels),
                           num_labels=self.num_labels, data_name=self.data_name)

    @staticmethod
    def column(value: str) -> str | int | None:
        """A column override: None when empty, an int for digit strings, else the name."""
        if not value:
            return None
        return int(value) if value.isdigit() else value

    # -- (de)serialisation --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = _current_names(data, field_names.TRAIN, "TrainConfig")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s) {unknown}; known fields: {sorted(known)}")
        return cls(**copy.deepcopy(data))

    def to_toml(self, path: str | Path | None = None) -> str:
        """The config as TOML text; also written to ``path`` if given."""
        text = tomlio.dumps(self.to_dict())
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    @classmethod
    def from_toml(cls, path_or_text: str | Path) -> TrainConfig:
        """Read a config from a TOML file (a ``Path``, or a one-line string without ``=``) or from TOML text."""
        text = str(path_or_text)
        if isinstance(path_or_text, Path) or ("\n" not in text and "=" not in text):
            return cls.from_dict(tomlio.read_file(path_or_text, what="config file"))
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML in config text: {exc}") from exc
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes`` applied (validated)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})
