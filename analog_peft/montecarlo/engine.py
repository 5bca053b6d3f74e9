"""Chip Monte Carlo: every method × chip × inference time, as a tidy table written incrementally.

A run directory holds ``manifest.json`` (config, its hash, seeds, package versions, eval-set hash),
``digital.csv`` (each method's noise-free score, ``chip = -1``), one ``chips/chip_NNNNN.csv`` per finished
chip (written atomically: a temporary file renamed into place) and ``results.csv`` (all rows). Beside them,
the per-example scores (``chips/chip_NNNNN.npz``, ``digital.npz``, ``examples.csv`` and the assembled
``per_example.npz``, see :mod:`.examples`): a chip's ``.npz`` is written before its CSV, so every finished
chip has both. A killed run resumes where it stopped: finished chips are kept, the chip in flight is redone
from its seed, none is duplicated. A run directory made with another configuration is refused, naming the fields that differ.

One writer at a time: a run holds an ``flock`` on ``<out>/.lock`` (its pid and host written inside) and a
second run on the same directory is refused. Everything is checked (config, data, adapters loadable)
before ``manifest.json`` is written. ``n_chips`` is not part of the configuration hash: a larger
``n_chips`` extends a finished run (the first chips are kept as they are, only the new ones run), a
smaller one reports the first ``n_chips`` chips (the other chip files stay and count again when it grows).

Chips are independent and seeded by ``(seed, chip, tile, purpose, t)`` (see :mod:`analog_peft.chips`), so
the table does not depend on the number of workers or on the order chips finish in. Workers are local
processes by default, or Ray actors (``executor="ray"``, :mod:`.ray_executor`) for clusters.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import device_models
from analog_peft import field_names
from analog_peft.chip_stack import LinearMaps, linear_maps
from analog_peft.chips import ChipProgrammer
from analog_peft.deploy import DEPLOYMENTS, Deployment, adapter_path, deploy, normalize_adapter
from analog_peft.devicecheck import warn_if_layer_mapped
from analog_peft.finite import check_finite_logits
from analog_peft.models import load_tokenizer
from analog_peft.montecarlo import examples as ex
from analog_peft.montecarlo.decoder_config import (
    decoder_data_label,
    normalized_decoder_fields,
    validate_classifier_options,
    validate_decoder,
)
from analog_peft.montecarlo.decoders import assemble_outputs, manifest_kind
from analog_peft.montecarlo.evaluators import Arrays, Evaluator, is_decoder_task, make_evaluator, stack_arrays
from analog_peft.montecarlo.files import RunDirLocked, atomic_write, lock_run_dir, read_results_csv
from analog_peft.montecarlo.stats import format_time, replicate_of
from analog_peft.platform_info import platform_info
from analog_peft.presets import resolve_rpu
from analog_peft.tasks import (
    CUSTOM,
    DataError,
    DataOptions,
    TaskSpec,
    data_record,
    get_task,
    load_split,
    resolve_data_dir,
    resolve_task,
)
from analog_peft.tasks import data_name as task_data_name
from analog_peft.tasks.batching import encode_classification, pad_collate
from analog_peft.tasks.glue import find_split_file
from analog_peft.tasks.metrics import classification_metrics
from analog_peft.tasks.userdata import check_options
from analog_peft.versions import package_versions
from device_models.units import DAY, HOUR, MONTH, SECOND, WEEK, YEAR

DEFAULT_TIMES = (SECOND, HOUR, DAY, WEEK, MONTH, YEAR)
#: torch threads every chip is evaluated on, in this process, a worker process or a Ray actor: torch's
#: vectorised kernels round the last elements of each thread's range differently, so a fixed count keeps
#: the rows independent of the number of workers (use more workers, not more threads, for more cores)
EVAL_THREADS = 1
COLUMNS = ["run", "method", "task", "device", "deployment", "chip", "t", "t_label", "metric", "value"]
#: config fields that do not change any row: the display name, the memory mode, the number of chips and the
#: sequential stopping rule (which only chooses how many chips run)
UNHASHED = ("run", "keep_chip_state", "eval_stack", "n_chips", "target_ci_width", "max_chips", "chip_batch", "target_pair",
            "target_metric", "target_scope")
#: the CIs a sequential run can stop on: the chip-level CI of each deployment, or the CI of every source
TARGET_SCOPES = ("chips", "all")
#: fields hashed only when they differ from these values, so run directories made before they existed keep
#: their configuration hash
HASHED_UNLESS = {"torch_device": "cpu", "eval_file": None, "text_column": "", "text_pair_column": "",
                 "label_column": "", "task_type": "", "labels": [], "data_name": "", "metrics": [],
                 "max_new_tokens": 64, "num_beams": 1, "rpu": None, "allow_conversion_override": False,
                 "subset_seed": 0, "noisy_layers": [], "digital_layers": []}
#: fields hashed under their former name, so run directories made before a rename keep their digest
HASH_NAMES = {new: old for old, new in field_names.MONTECARLO.items()}
MANIFEST = "manifest.json"
#: the config of the run, re-runnable with ``analog-peft montecarlo --config``
CONFIG_TOML = "montecarlo_config.toml"

__all__ = ["MethodSpec", "MonteCarloConfig", "RunDirLocked", "RunDirMismatch", "collect", "config_differences",
           "run_montecarlo"]


class RunDirMismatch(RuntimeError):
    """The run directory holds results made with a different configuration."""


@dataclass
class MethodSpec:
    """One deployed method: a display name and its adapter directory (``None``: the bare base; ``peft:DIR``:
    a Hugging Face PEFT adapter folder)."""

    name: str
    adapter: str | None = None
    #: StochGRASP only: deploy one fixed sample of its ``(γ, β)`` per chip (seeded by the run's seed and the
    #: chip, :func:`chip_sample_seed`) instead of the means; the digital row stays at the means
    chip_sample: bool = False


@dataclass
class MonteCarloConfig:
    """Everything that determines a Monte Carlo table (hashed into the manifest)."""

    methods: list[MethodSpec]
    base_model: str = "minilm-l6"
    task: str = "sst2"
    split: str = "dev"
    max_examples: int | None = None
    #: seed of the random ``max_examples`` subset of the split
    subset_seed: int = 0
    data_dir: str | None = None
    max_length: int = 128
    batch_size: int = 64
    #: device model: a ``device_models`` name or ``{name, params}`` (``device`` in files written before)
    device_model: str | dict[str, Any] = "pcm"
    #: RPU preset; None = each adapter's recorded conversion (``conversion.json``; ``mapped`` when none)
    rpu: str | dict[str, Any] | None = None
    #: evaluate an adapter on another preset than it was trained on (else refused); recorded in the manifest
    allow_conversion_override: bool = False
    deployment: str = "periphery"
    n_chips: int = 25
    times: list[float] = field(default_factory=lambda: list(DEFAULT_TIMES))
    seed: int = 0
    compensate_drift: bool = True
    #: where the noise hurts: only these layers are programmed with the device model (empty: all), and
    #: ``digital_layers`` are kept at their exact weights (as if computed digitally); entries are
    #: ``role:q|k|v|o|ffn_up|ffn_down|…``, ``block:<i>`` or module-name patterns (suffix, ``re:<regex>``)
    noisy_layers: list[str] = field(default_factory=list)
    digital_layers: list[str] = field(default_factory=list)
    #: outputs of the task head; None = the task's (2 for SST-2, 1 for STS-B, the label set of custom data)
    num_labels: int | None = None
    run: str = "mc"
    torch_device: str = "cpu"
    #: keep each chip's per-device draws between time points (fast) or re-draw them per time point (no
    #: per-chip memory; same results, so not hashed)
    keep_chip_state: bool = True
    #: chip-batched evaluation (``analog_peft.chip_stack``): up to this many time points of a chip stacked
    #: into one batched forward (same rows up to float summation order, so not hashed). 1 = one at a time,
    #: the CPU default (stacking measured slower on CPU); for GPUs. Needs a perfect periphery and a classifier
    eval_stack: int = 1
    #: the user's own evaluation file (CSV, TSV, JSON Lines, Parquet) instead of the task's split file, and
    #: its layout: the same fields as the training config (see ``analog_peft.tasks.DataOptions``)
    eval_file: str | None = None
    text_column: str = ""
    text_pair_column: str = ""
    label_column: str = ""
    task_type: str = ""
    labels: list[str] = field(default_factory=list)
    data_name: str = ""
    #: sequential mode (see :mod:`.sequential`): add ``chip_batch`` chips at a time, from ``n_chips`` up to
    #: ``max_chips``, until the 95 % CI of every method's mean (or of the paired difference ``target_pair`` =
    #: ``[A, B]``, A − B) on ``target_metric`` (default: the task's primary metric) is at most
    #: ``target_ci_width`` wide (high − low) at every time; ``target_scope`` "chips" (the chip-level CI) or
    #: "all" (chips × examples × seeds). None: a fixed ``n_chips``.
    target_ci_width: float | None = None
    max_chips: int | None = None
    chip_batch: int = 10
    target_pair: list[str] = field(default_factory=list)
    target_metric: str = ""
    target_scope: str = "chips"
    #: decoder tasks (``e2e``: generation, ``lm``: perplexity; see :mod:`.decoders`): the metrics to report
    #: (default: all of the task's), and the decoding of ``e2e`` (greedy when ``num_beams`` is 1)
    metrics: list[str] = field(default_factory=list)
    max_new_tokens: int = 64
    num_beams: int = 1

    def __post_init__(self) -> None:
        self.methods = [m if isinstance(m, MethodSpec) else MethodSpec(**m) for m in self.methods]
        self.times = [float(t) for t in self.times]
        self.labels = list(self.labels)
        self.target_pair = list(self.target_pair)
        self.metrics = [self.metrics] if isinstance(self.metrics, str) else list(self.metrics)

    @property
    def decoder(self) -> bool:
        """Whether the task is scored on a causal LM (``e2e``, ``lm``)."""
        return is_decoder_task(self.task)

    def data_options(self) -> DataOptions:
        """The data fields as :class:`~analog_peft.tasks.DataOptions`."""
        return DataOptions(task=self.task, eval_file=self.eval_file or "", text_column=self.text_column,
                           text_pair_column=self.text_pair_column, label_column=self.label_column,
                           task_type=self.task_type, labels=tuple(self.labels), num_labels=self.num_labels or 0,
                           data_name=self.data_name)

    def task_spec(self) -> TaskSpec:
        """The task (custom data: its label set from ``labels`` / ``num_labels``, else read from ``eval_file``)."""
        return resolve_task(self.data_options(), self.split, data_dir=self.data_dir)

    def head_outputs(self) -> int:
        """``num_labels``, or the task's when unset (see :meth:`normalized`; 0 for decoder tasks)."""
        if self.decoder:
            return 0
        return self.num_labels if self.num_labels is not None else self.task_spec().num_labels

    def data_label(self) -> str:
        """The data's name in the table's ``task`` column and the report title (the task name for GLUE)."""
        if self.decoder:
            return decoder_data_label(self)
        return task_data_name(self.data_options(), get_task(self.task))

    def validate(self) -> None:
        """Raise ``ValueError`` naming the problem and the fix, before anything is loaded or run."""
        if not self.methods:
            raise ValueError("no methods given: pass at least one NAME=ADAPTER_DIR (or NAME= for the bare base)")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"method names must be unique, got {names}")
        for m in self.methods:
            if m.adapter is not None and not (adapter_path(m.adapter) / "adapter_config.json").is_file():
                found = [p.parent for p in sorted(adapter_path(m.adapter).glob("*/adapter_config.json"))]
                hint = f": pass one of its adapters, {' or '.join(map(str, found))}" if found else ""
                raise ValueError(f"method {m.name!r}: {m.adapter} has no adapter_config.json (not a saved "
                                 f"adapter){hint}")
            if m.chip_sample:
                _check_chip_sample(m)
        if not self.times:
            raise ValueError("the time grid is empty: give at least one inference time, e.g. --times 1s,1d,1y")
        if any(t < 0 for t in self.times) or len(set(self.times)) != len(self.times):
            raise ValueError(f"inference times must be distinct and >= 0 s, got {self.times}")
        if str(self.torch_device).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"torch_device={self.torch_device!r} but CUDA is not available here; use 'cpu'")
        if self.n_chips < 1:
            raise ValueError(f"n_chips must be >= 1, got {self.n_chips}")
        if self.eval_stack < 1:
            raise ValueError(f"eval_stack must be >= 1 (1 = one chip state per forward), got {self.eval_stack}")
        if self.eval_stack > 1 and self.decoder:
            raise ValueError(f"eval_stack = {self.eval_stack}: chip-batched evaluation is implemented for "
                             "classification and regression tasks; decoder tasks run one state at a time "
                             "(use eval_stack = 1)")
        for name in ("noisy_layers", "digital_layers"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
                raise ValueError(f"{name} must be a list of layer patterns such as [\"role:q\", \"block:0\"], got {value!r}")
        if self.deployment not in DEPLOYMENTS:
            raise ValueError(f"unknown deployment {self.deployment!r}; choose one of {DEPLOYMENTS}")
        for name in names:
            replicate_of(name)  # "NAME@K" must have an integer K
        self._validate_sequential()
        dm = device_models.get(self.device_model)
        for rpu in {json.dumps(c["rpu"], sort_keys=True) for c in self.conversions().values()}:
            warn_if_layer_mapped(dm, json.loads(rpu), "montecarlo")
        for t in self.times:
            if t > 0:
                dm.check_time(t)
        if self.decoder:
            validate_decoder(self)
            return
        validate_classifier_options(self)
        spec = get_task(self.task)
        check_options(self.data_options())
        if spec.name == CUSTOM and not self.eval_file:
            raise DataError("task 'custom' reads your own file: set --eval-file (eval_file) to a CSV, TSV, "
                            "JSON Lines or Parquet file")

    def conversions(self) -> dict[str, dict[str, Any]]:
        """Each method's conversion: its adapter's record, or ``rpu`` where it overrides one (see :mod:`analog_peft.
        conversion_config`); raises ``ConversionMismatch`` for an override not allowed."""
        from analog_peft.conversion_config import load_conversion, resolve_rpu_choice, rpu_dict

        if self.rpu is not None:
            resolve_rpu(self.rpu)
        out = {}
        for m in self.methods:
            recorded = load_conversion(adapter_path(m.adapter)) if m.adapter is not None else None
            where = f"method {m.name!r} (adapter {adapter_path(m.adapter)})" if m.adapter is not None else m.name
            rpu, overridden = resolve_rpu_choice(self.rpu, recorded, "mapped", where, self.allow_conversion_override)
            out[m.name] = {"rpu": rpu_dict(rpu), "recorded": recorded.preset if recorded else None,
                           "overridden": overridden}
        return out

    def _validate_sequential(self) -> None:
        if self.target_ci_width is None:
            if self.max_chips is not None:
                raise ValueError("max_chips is the limit of the sequential mode: give target_ci_width "
                                 "(--target-ci-width W) too, or use n_chips (--chips) for a fixed number")
            return
        if not self.target_ci_width > 0:
            raise ValueError(f"target_ci_width must be > 0 (a CI width in metric units), got {self.target_ci_width}")
        if self.max_chips is None or self.max_chips < self.n_chips:
            raise ValueError(f"the sequential mode needs max_chips >= n_chips (the first look, {self.n_chips}); "
                             f"got {self.max_chips}: pass --max-chips N")
        if self.chip_batch < 1:
            raise ValueError(f"chip_batch must be >= 1, got {self.chip_batch}")
        if self.target_scope not in TARGET_SCOPES:
            raise ValueError(f"target_scope must be one of {TARGET_SCOPES}, got {self.target_scope!r}")
        names = {m.name for m in self.methods} | {replicate_of(m.name)[0] for m in self.methods}
        if self.target_pair and (len(self.target_pair) != 2 or not set(self.target_pair) <= names):
            raise ValueError(f"target_pair must name two methods A,B of {sorted(names)}, got {self.target_pair}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def normalized(self) -> MonteCarloConfig:
        """A copy with paths in their effective form, so equal setups compare equal.

        ``data_dir`` becomes the absolute folder the split file is read from (flag, else
        ``$ANALOG_PEFT_DATA``, else the default root; None when ``eval_file`` names the file, which becomes
        absolute); adapter folders become absolute, resolved paths (no trailing ``/``); an unset
        ``num_labels`` becomes the task's (for custom classification data without ``labels`` the label set is
        read from ``eval_file`` and recorded).
        """
        data = self.to_dict()
        if self.decoder:
            return MonteCarloConfig.from_dict(normalized_decoder_fields(data))
        if self.eval_file:
            data["eval_file"], data["data_dir"] = str(Path(self.eval_file).expanduser().resolve()), None
        else:
            data["data_dir"] = _effective_data_dir(self.task, self.split, self.data_dir)
        if self.num_labels is None:
            spec = MonteCarloConfig.from_dict({**data, "methods": []}).task_spec()
            data["num_labels"] = spec.num_labels
            if spec.name == CUSTOM and spec.label_names and not self.labels:
                data["labels"] = list(spec.label_names)
        data["methods"] = [{**m, "adapter": None if m["adapter"] is None else normalize_adapter(m["adapter"])}
                           for m in data["methods"]]
        return MonteCarloConfig.from_dict(data)

    def hashed_fields(self) -> dict[str, Any]:
        """The normalised fields that change the results (see ``UNHASHED``; those of ``HASHED_UNLESS`` only
        when they differ from its value, e.g. ``torch_device`` unless "cpu")."""
        out = {HASH_NAMES.get(k, k): v for k, v in self.normalized().to_dict().items()
               if k not in UNHASHED and not (k in HASHED_UNLESS and v == HASHED_UNLESS[k])}
        out["methods"] = [{k: v for k, v in m.items() if k != "chip_sample" or v} for m in out["methods"]]
        return out

    def digest(self) -> str:
        """Hash of :meth:`hashed_fields` (``n_chips`` excluded: more chips extend the same run)."""
        return hashlib.sha256(json.dumps(self.hashed_fields(), sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonteCarloConfig:
        return cls(**field_names.current_names(data, field_names.MONTECARLO, "Monte Carlo config"))

    def to_toml(self, path: str | Path | None = None) -> str:
        """The config as TOML (``adapter = ""``: the bare base); written atomically to ``path`` when given."""
        from analog_peft.training.tomlio import dumps

        data = self.to_dict()
        data["methods"] = [{"name": m["name"], "adapter": m["adapter"] or "", **({"chip_sample": True} if m["chip_sample"]
                            else {})} for m in data["methods"]]
        text = dumps(data)
        if path is not None:
            atomic_write(Path(path), text)
        return text

    @classmethod
    def from_toml_dict(cls, data: dict[str, Any], source: str = "config") -> MonteCarloConfig:
        """A config from parsed TOML (unset fields take their defaults); unknown fields are named."""
        data = field_names.current_names(data, field_names.MONTECARLO, source)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{source}: unknown Monte Carlo field(s) {unknown}; fields: {sorted(f.name for f in fields(cls))}")
        if not data.get("methods"):
            raise ValueError(f"{source}: no methods; add methods = [{{name = \"grasp\", adapter = \"runs/grasp\"}}]")
        methods = [m if isinstance(m, dict) else {} for m in data["methods"]]
        if any(set(m) - {"name", "adapter", "chip_sample"} or "name" not in m for m in methods):
            raise ValueError(f"{source}: each method is {{name = \"...\", adapter = \"DIR\"}} (adapter \"\": the bare "
                             "base; chip_sample = true: a StochGRASP adapter with one sample per chip)")
        specs = [MethodSpec(m["name"], m.get("adapter") or None, bool(m.get("chip_sample", False))) for m in methods]
        return cls(**{**data, "methods": specs})


def _check_chip_sample(m: MethodSpec) -> None:
    """``chip_sample`` needs a StochGRASP adapter (one line naming the method and its adapter's method)."""
    config = json.loads((adapter_path(m.adapter) / "adapter_config.json").read_text()) if m.adapter else {}
    if config.get("method") != "stochgrasp":
        raise ValueError(f"method {m.name!r}: chip_sample deploys one sample of StochGRASP's (γ, β) per chip, but "
                         f"{m.adapter or 'the bare base'} is {config.get('method', 'no adapter')!r}; drop chip_sample")


def chip_sample_seed(seed: int, chip: int) -> int:
    """Seed of a StochGRASP adapter's ``(γ, β)`` sample on chip ``chip`` of a run seeded ``seed``."""
    return 1_000_003 * seed + chip


def _set_chip_samples(model: torch.nn.Module, seed: int | None) -> None:
    for module in model.modules():
        if hasattr(module, "set_chip_sample"):
            module.set_chip_sample(seed)


def _effective_data_dir(task: str, split: str, data_dir: str | None) -> str:
    """Absolute folder holding the split file (the resolved data root when the file cannot be found)."""
    try:
        return str(find_split_file(get_task(task), split, data_dir).parent.resolve())
    except (FileNotFoundError, ValueError):
        return str(resolve_data_dir(data_dir).resolve())


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Readable differences between two config values, e.g. ``["device: 'pcm' → 'hermes'"]``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(f"{name}: {old.get(key, '(absent)')!r} → {new.get(key, '(absent)')!r}")
            else:
                out += config_differences(old[key], new[key], name)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True))
                for d in config_differences(a, b, f"{prefix}[{i}]")]
    return [] if old == new else [f"{prefix or 'value'}: {old!r} → {new!r}"]


# -- evaluation ------------------------------------------------------------------------------------------


@dataclass
class EvalSet:
    """A tokenised, batched evaluation set, its labels (scores for regression) and its task (None: a
    classification scored with accuracy and Matthews correlation)."""

    batches: list[dict[str, torch.Tensor]]
    labels: list[int] | list[float]
    sha256: str
    task: TaskSpec | None = None
    record: dict[str, Any] | None = None  # the data's name, file and file sha256 (``tasks.data_record``)
    #: row of the loaded data of each example (in batch order), and its text(s), for ``examples.csv``
    index: list[int] | None = None
    texts: list[str] | None = None
    pairs: list[str] | None = None

    @property
    def regression(self) -> bool:
        return self.task is not None and self.task.kind == "regression"


def _eval_digest(texts: list[str], pairs: list[str] | None, labels: list[Any]) -> str:
    """sha256 of the examples (``text\tlabel`` lines; ``text\tsecond text\tlabel`` for pairs)."""
    rows = zip(texts, labels, strict=True) if pairs is None else zip(texts, pairs, labels, strict=True)
    return hashlib.sha256("\n".join("\t".join(map(str, row)) for row in rows).encode()).hexdigest()


def load_eval_set(config: MonteCarloConfig) -> EvalSet:
    task = config.task_spec()
    data = load_split(task, config.split, data_dir=config.data_dir, max_examples=config.max_examples,
                      seed=config.subset_seed,
                      path=config.eval_file or None, **config.data_options().columns())
    tok = load_tokenizer(config.base_model)
    features = encode_classification(tok, data, max_length=config.max_length)
    pad = tok.pad_token_id or 0
    # length-sorted batches: less padding, same predictions (padding is masked)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    batches, labels = [], []
    for start in range(0, len(order), config.batch_size):
        idx = order[start : start + config.batch_size]
        batch = pad_collate([features[i] for i in idx], pad_token_id=pad)
        labels.extend(data.labels[i] for i in idx)
        batch.pop("labels", None)
        batches.append(batch)
    record = data_record(config.data_label(), task, {"eval": data})
    pairs = None if data.text_pairs is None else [data.text_pairs[i] for i in order]
    return EvalSet(batches, labels, _eval_digest(data.texts, data.text_pairs, data.labels), task, record,
                   index=order, texts=[data.texts[i] for i in order], pairs=pairs)


def score(
    model: torch.nn.Module, eval_set: EvalSet, chips: ChipProgrammer | None = None, where: str = "evaluation"
) -> dict[str, float]:
    """Task metrics of ``model`` on the eval set (per-MVM forward noise seeded per batch when ``chips``):
    the task's metrics on arg-max classes, or on the single logit of a regression task.

    Raises :class:`~analog_peft.finite.NonFiniteError` naming ``where`` (method, chip, time) on NaN/inf logits.
    """
    return score_examples(model, eval_set, chips, where)[0]


def score_examples(
    model: torch.nn.Module, eval_set: EvalSet, chips: ChipProgrammer | None = None, where: str = "evaluation"
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """``(metrics, pred, loss)``: :func:`score`'s metrics and, per example (batch order), the prediction
    (class, or score of a regression) and the loss (cross-entropy of the label, or squared error)."""
    return score_copies(model, eval_set, 1, chips, where)[0]


@torch.no_grad()
def score_copies(
    model: torch.nn.Module, eval_set: EvalSet, copies: int, chips: ChipProgrammer | None = None,
    where: str = "evaluation",
) -> list[tuple[dict[str, float], np.ndarray, np.ndarray]]:
    """:func:`score_examples` of each of ``copies`` stacked states (``analog_peft.chip_stack.stacked``): every
    batch runs once, repeated ``copies`` times along dim 0, and copy k's logits are state k's."""
    preds: list[list[Any]] = [[] for _ in range(copies)]
    losses: list[list[torch.Tensor]] = [[] for _ in range(copies)]
    device = next(model.parameters()).device
    start = 0
    for i, batch in enumerate(eval_set.batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        if copies > 1:
            batch = {k: v.repeat(copies, *([1] * (v.dim() - 1))) for k, v in batch.items()}
        if chips is None:
            logits = model(**batch).logits
        else:
            with chips.seeded_forward("batch", i):
                logits = model(**batch).logits
        check_finite_logits(logits, f"{where}, batch {i}")
        n = len(logits) // copies
        labels = torch.tensor(eval_set.labels[start : start + n])
        start += n
        for k, part in enumerate(logits.split(n)):
            preds[k].extend(part[:, 0].tolist() if eval_set.regression else part.argmax(-1).tolist())
            losses[k].append(_example_loss(part.detach().float().cpu(), labels, eval_set.regression))
    return [_scored(eval_set, p, ls) for p, ls in zip(preds, losses, strict=True)]


def _scored(eval_set: EvalSet, preds: list[Any], losses: list[torch.Tensor]
            ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    if eval_set.task is None:
        metrics = classification_metrics(preds, eval_set.labels)
    else:
        metrics = eval_set.task.compute_metrics(preds, eval_set.labels)
    pred = np.asarray(preds, dtype=ex.pred_dtype(eval_set.regression))
    loss = torch.cat(losses).numpy().astype(np.float16) if losses else np.zeros(0, np.float16)
    return metrics, pred, loss


def _example_loss(logits: torch.Tensor, labels: torch.Tensor, regression: bool) -> torch.Tensor:
    """Per-example loss: squared error of the first logit (regression), else cross-entropy of the label."""
    if regression:
        return (logits[:, 0] - labels.float()) ** 2
    return torch.nn.functional.cross_entropy(logits, labels.long(), reduction="none")


# -- one process's work ----------------------------------------------------------------------------------


class _Worker:
    """Deployments and chip programmers of every method, built once per process."""

    def __init__(self, config: MonteCarloConfig, threads: int | None = None) -> None:
        if threads:
            torch.set_num_threads(threads)
        self.config = config
        self.evaluator = make_evaluator(config)
        self.deployments: list[tuple[Deployment, ChipProgrammer]] = []
        #: for each deployment, the earlier one whose chips it copies (``None``: it programs its own)
        self.leaders: list[ChipProgrammer | None] = []
        for m in config.methods:
            dep = deploy(config.base_model, m.adapter, config.deployment, config.rpu, config.head_outputs(),
                         name=m.name, causal=config.decoder, allow_override=config.allow_conversion_override)
            dep.model.to(config.torch_device)
            chips = ChipProgrammer(dep.model, config.device_model, seed=config.seed, compensate_drift=config.compensate_drift,
                                   keep_state=config.keep_chip_state, noisy_layers=config.noisy_layers,
                                   digital_layers=config.digital_layers)
            own = [ch for (_, ch), lead in zip(self.deployments, self.leaders, strict=True) if lead is None]
            self.leaders.append(next((c for c in own if chips.shares_chips_with(c)), None))
            self.deployments.append((dep, chips))

    def chip_rows(self, chip: int) -> list[dict[str, Any]]:
        """Every method's rows on chip ``chip`` (see :meth:`chip_result`)."""
        return self.chip_result(chip)[0]

    def chip_result(self, chip: int) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        """Every method on chip ``chip`` at every time point: the rows and the per-example arrays
        (the evaluator's, e.g. ``pred``, ``loss``, of shape ``(methods, times, examples)``; ``methods``, ``times``).

        Methods deployed in the periphery of the same base share the chip: it is programmed and drifted
        once (by the first of them) and copied into the others' tiles (bit-identical, see
        ``ChipProgrammer.copy_from``), instead of being re-drawn per method.
        """
        c = self.config
        device_name = device_models.get(c.device_model).name
        rows: list[list[dict[str, Any]]] = [[] for _ in self.deployments]
        per_example: list[list[dict[str, np.ndarray]]] = [[] for _ in self.deployments]
        for (dep, chips), leader, spec in zip(self.deployments, self.leaders, c.methods, strict=True):
            if leader is None:
                chips.program(chip)
            if spec.chip_sample:
                _set_chip_samples(dep.model, chip_sample_seed(c.seed, chip))
        for group in _time_groups(c.times, c.eval_stack):
            for i, scored in enumerate(self._group_scores(chip, group, device_name)):
                for t, (metrics, arrays) in zip(group, scored, strict=True):
                    per_example[i].append(arrays)
                    rows[i] += [_row(c, self.deployments[i][0].name, device_name, chip, t, m, v)
                                for m, v in metrics.items()]
        for (dep, chips), spec in zip(self.deployments, c.methods, strict=True):
            chips.reset()
            if spec.chip_sample:
                _set_chip_samples(dep.model, None)
        arrays = {**stack_arrays(per_example), "methods": np.array([d.name for d, _ in self.deployments]),
                  "times": np.asarray(c.times, dtype=float)}
        return [row for method_rows in rows for row in method_rows], arrays

    def _group_scores(self, chip: int, group: list[float], device_name: str) -> list[list[tuple[dict, Arrays]]]:
        """``[method][time of group] → (metrics, arrays)``: each time evaluated on its own, or (a group of
        several, ``eval_stack``) the chip's states at those times kept and evaluated in one batched forward."""
        scores: list[list[tuple[dict, Arrays]]] = [[] for _ in self.deployments]
        states: list[list[LinearMaps]] = [[] for _ in self.deployments]
        for t in group:
            for i, ((dep, chips), leader) in enumerate(zip(self.deployments, self.leaders, strict=True)):
                if leader is None:
                    chips.drift(t)
                else:
                    chips.copy_from(leader)
                if len(group) > 1:
                    states[i].append(linear_maps(dep.model))
                else:
                    scores[i].append(self.evaluator.evaluate(dep.model, chips, _where(dep, chip, t, device_name)))
        if len(group) > 1:
            for i, (dep, _) in enumerate(self.deployments):
                where = _where(dep, chip, group[0], device_name) + f" (stack of {len(group)} times)"
                scores[i] = self.evaluator.evaluate_stacked(dep.model, states[i], where)
        return scores


_WORKER: _Worker | None = None
#: what one chip yields: its table rows and its per-example arrays
ChipResult = tuple[list[dict[str, Any]], dict[str, np.ndarray]]


def _init_process(config_dict: dict[str, Any], threads: int) -> None:
    global _WORKER
    _WORKER = _Worker(MonteCarloConfig.from_dict(config_dict), threads)


def _process_chip(chip: int) -> tuple[int, ChipResult]:
    assert _WORKER is not None
    return chip, _WORKER.chip_result(chip)


def _time_groups(times: list[float], size: int) -> list[list[float]]:
    """The time grid cut into consecutive groups of at most ``size`` (evaluated chip-batched when > 1)."""
    return [times[k : k + size] for k in range(0, len(times), max(1, size))]


def _where(dep: Deployment, chip: int, t: float, device_name: str) -> str:
    when = format_time(t) if t > 0 else "0s"
    return f"method {dep.name!r} on chip {chip} at t = {when} ({device_name})"


def _row(c: MonteCarloConfig, method: str, device: str, chip: int, t: float, metric: str, value: float) -> dict:
    return {
        "run": c.run, "method": method, "task": c.data_label(), "device": device, "deployment": c.deployment,
        "chip": chip, "t": t, "t_label": format_time(t) if t > 0 else "0s", "metric": metric, "value": value,
    }


# -- the run ---------------------------------------------------------------------------------------------


def run_montecarlo(
    config: MonteCarloConfig,
    out_dir: str | Path,
    workers: int | None = None,
    executor: str = "process",
    progress: bool = True,
    stop_after: int | None = None,
) -> pd.DataFrame:
    """Run (or resume) the Monte Carlo study of ``config`` in ``out_dir``; return the tidy table.

    ``workers`` local processes (None or 1: in this process), or ``executor="ray"`` to spread chips over Ray
    actors (``workers`` of them, default one per available CPU; see :mod:`.ray_executor`: ``ray.init()`` is
    called if needed, set ``RAY_ADDRESS`` to join an existing cluster).
    ``stop_after`` stops after that many newly finished chips (for tests of interruption).

    The directory is locked for the whole run (a second writer gets :class:`RunDirLocked`). Paths are
    normalised first (see :meth:`MonteCarloConfig.normalized`); the data, every adapter (the digital
    scores are computed) and the stored manifest are checked before anything is written.
    """
    config = config.normalized()
    config.validate()
    _check_executor(executor)
    out = Path(out_dir)
    with lock_run_dir(out):
        evaluator = make_evaluator(config)
        manifest, fresh = _checked_manifest(out, config, evaluator)
        digital = None if (out / "digital.csv").exists() else _digital_rows(config, evaluator)
        if fresh or manifest.get("n_chips") != config.n_chips:
            _write_manifest(out, manifest, config)
            config.to_toml(out / CONFIG_TOML)
        (out / "chips").mkdir(exist_ok=True)
        if digital is not None:
            _write_digital(out, evaluator, *digital)
        pending = [k for k in range(config.n_chips) if not _chip_path(out, k).exists()]
        if stop_after is not None:
            pending = pending[:stop_after]
        bar = tqdm(total=config.n_chips, initial=config.n_chips - len(pending), desc="chips", disable=not progress)
        for chip, (rows, arrays) in _execute(config, pending, workers, executor):
            atomic_write(ex.chip_npz_path(out, chip), ex.encode_arrays(**arrays))  # before the CSV marks it done
            _write_csv(_chip_path(out, chip), rows)
            bar.update(1)
        bar.close()
        return collect(out, config.n_chips)


def _write_digital(out: Path, evaluator: Evaluator, rows: list[dict[str, Any]], arrays: dict[str, np.ndarray]) -> None:
    """``examples.csv`` and ``digital.npz``, then ``digital.csv`` (the marker that the digital scores are done)."""
    evaluator.write_examples(out)
    atomic_write(out / ex.DIGITAL_FILE, ex.encode_arrays(**arrays))
    _write_csv(out / "digital.csv", rows)


def collect(out_dir: str | Path, n_chips: int | None = None) -> pd.DataFrame:
    """Assemble ``results.csv`` from the digital rows and the finished chips below ``n_chips`` (atomically),
    and ``per_example.npz`` from the same chips' per-example files (removed when one of them has none).

    ``n_chips`` defaults to the manifest's (every chip file when there is no manifest).
    """
    out = Path(out_dir)
    if n_chips is None and (out / MANIFEST).is_file():
        n_chips = json.loads((out / MANIFEST).read_text()).get("n_chips")
    chips = sorted((out / "chips").glob("chip_*.csv"))
    if n_chips is not None:
        chips = [p for p in chips if int(p.stem.split("_")[1]) < n_chips]
    parts = [read_results_csv(out / "digital.csv")] + [read_results_csv(p) for p in chips]
    df = pd.concat(parts, ignore_index=True)[COLUMNS].sort_values(["method", "chip", "t", "metric"], kind="stable")
    df = df.reset_index(drop=True)
    atomic_write(out / "results.csv", df.to_csv(index=False))
    _collect_examples(out, [int(p.stem.split("_")[1]) for p in chips])
    return df


#: what a study publishes of a run directory (its committed data): the table, the manifest and the config
PUBLISHED_FILES = ("results.csv", MANIFEST, CONFIG_TOML)
#: ... and the per-example predictions, for the chips × sentences (hierarchical) statistics
PUBLISHED_WITH_EXAMPLES = (*PUBLISHED_FILES, ex.PER_EXAMPLE_FILE)


def publish(run_dir: str | Path, dest: str | Path, files: Sequence[str] = PUBLISHED_FILES) -> pd.DataFrame:
    """:func:`collect` ``run_dir``, then copy ``files`` of it to ``dest`` (made if missing); returns the table."""
    run, out = Path(run_dir), Path(dest)
    df = collect(run)
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy2(run / f, out / f)
    return df


def _collect_examples(out: Path, chips: list[int]) -> None:
    """``per_example.npz`` of ``chips`` (labels from ``examples.csv``; nothing without it: an older run)."""
    table = out / ex.EXAMPLES_CSV
    if manifest_kind(out) is not None:
        (out / ex.PER_EXAMPLE_FILE).unlink(missing_ok=True)
        assemble_outputs(out, chips)
        return
    if not table.is_file():
        (out / ex.PER_EXAMPLE_FILE).unlink(missing_ok=True)
        return
    labels = pd.read_csv(table, usecols=["label"])["label"].to_numpy()
    kind = "regression" if np.issubdtype(labels.dtype, np.floating) else "classification"
    ex.assemble(out, chips, kind, labels)


def _execute(
    config: MonteCarloConfig, chips: Sequence[int], workers: int | None, executor: str
) -> Iterator[tuple[int, ChipResult]]:
    if not chips:
        return
    if executor == "ray":
        from analog_peft.montecarlo.ray_executor import execute_ray

        yield from execute_ray(config, chips, actors=workers)
    elif workers is None or workers <= 1:
        before = torch.get_num_threads()
        torch.set_num_threads(EVAL_THREADS)
        try:
            worker = _Worker(config)
            for chip in chips:
                yield chip, worker.chip_result(chip)
        finally:
            torch.set_num_threads(before)
    else:
        ctx = get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_process,
                                 initargs=(config.to_dict(), EVAL_THREADS)) as pool:
            futures = [pool.submit(_process_chip, chip) for chip in chips]
            for fut in as_completed(futures):
                yield fut.result()


def _check_executor(executor: str) -> None:
    """Refuse an unknown executor, or Ray when it is not installed, before anything is written."""
    if executor not in ("process", "ray"):
        raise ValueError(f"unknown executor {executor!r}; use 'process' or 'ray'")
    if executor == "ray":
        from analog_peft.montecarlo.ray_executor import require_ray

        require_ray()


def _digital_rows(config: MonteCarloConfig, evaluator: Evaluator) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Each method's digital rows and per-example arrays (e.g. ``pred``, ``loss`` of shape ``(methods, examples)``)."""
    rows, per_method = [], []
    for m in config.methods:
        dep = deploy(config.base_model, m.adapter, config.deployment, "ideal", config.head_outputs(), name=m.name,
                     causal=config.decoder, allow_override=True)  # the digital reference: perfect tiles
        dep.model.to(config.torch_device)
        metrics, arrays = evaluator.evaluate(dep.model, where=f"method {m.name!r} on the digital base")
        per_method.append(arrays)
        for metric, value in metrics.items():
            rows.append(_row(config, m.name, "digital", -1, 0.0, metric, value))
    return rows, {k: np.stack([a[k] for a in per_method]) for k in per_method[0]}


def _checked_manifest(out: Path, config: MonteCarloConfig, eval_set: Evaluator) -> tuple[dict[str, Any], bool]:
    """``(manifest, fresh)``: the stored one if it matches ``config`` (else ``RunDirMismatch``), or a new one.

    A stored manifest with no results beside it (no ``digital.csv``, no chip file) binds nothing and is
    replaced.
    """
    path = out / MANIFEST
    has_results = (out / "digital.csv").exists() or any((out / "chips").glob("chip_*.csv"))
    if not (path.exists() and has_results):
        return _new_manifest(config, eval_set), True
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise RunDirMismatch(f"{path} is corrupt ({err}); use a new run directory") from err
    diffs = config_differences(_stored_fields(old, path), config.hashed_fields())
    if diffs:
        raise RunDirMismatch(
            f"{out} holds results of a different configuration ({'; '.join(diffs)}); results would be mixed. "
            "Use a new --out directory, or the original options."
        )
    if old.get("eval_set_sha256") != eval_set.sha256:
        raise RunDirMismatch(
            f"{out} holds results of a different evaluation set ({old.get('eval_set_size')} examples, sha256 "
            f"{str(old.get('eval_set_sha256'))[:12]} → {eval_set.size}, {eval_set.sha256[:12]}): the data "
            "changed. Use a new --out directory, or restore the original data."
        )
    changed = [name for name, digest in adapter_digests(config).items()
               if name in old.get("adapter_sha256", {}) and old["adapter_sha256"][name] != digest]
    if changed:
        raise RunDirMismatch(
            f"{out}: the adapter files of {changed} changed since this run started (same folders, other "
            "weights); results would be mixed. Use a new --out directory, or restore the original adapters."
        )
    return old, False


def _stored_fields(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    """The hashed fields of a stored manifest's config, normalised as today's (older manifests included)."""
    names = {f.name for f in fields(MonteCarloConfig)} | set(field_names.MONTECARLO)
    stored = manifest.get("config") or {k: v for k, v in manifest.items() if k in names}
    try:
        return MonteCarloConfig.from_dict(stored).hashed_fields()
    except (TypeError, ValueError) as err:
        raise RunDirMismatch(f"{path} holds a config this version cannot read ({err}); use a new run directory") \
            from err


def _new_manifest(config: MonteCarloConfig, eval_set: Evaluator) -> dict[str, Any]:
    return {
        **config.to_dict(),
        "config": config.to_dict(),
        "config_hash": config.digest(),
        "eval_set_sha256": eval_set.sha256,
        "eval_set_size": eval_set.size,
        "data": eval_set.record,
        "adapter_sha256": adapter_digests(config),
        "conversions": config.conversions(),
        "device_model": device_models.get(config.device_model).to_dict(),
        "versions": _versions(),
        "platform": platform_info(EVAL_THREADS),
    }


def _write_manifest(out: Path, manifest: dict[str, Any], config: MonteCarloConfig) -> None:
    """Write ``manifest`` atomically, with this run's ``n_chips`` and the current form of the config hash
    (a sequential record no longer describes the chips: dropped; a sequential run writes its own at the end)."""
    manifest.pop("sequential", None)
    manifest["n_chips"] = config.n_chips
    if isinstance(manifest.get("config"), dict):
        manifest["config"]["n_chips"] = config.n_chips
    manifest["config_hash"] = config.digest()
    atomic_write(out / MANIFEST, json.dumps(manifest, indent=2, default=str))


def adapter_digests(config: MonteCarloConfig) -> dict[str, str]:
    """sha256 over each method's adapter files (name + bytes), so an adapter overwritten in place is noticed."""
    out = {}
    for m in config.methods:
        if m.adapter is None:
            continue
        h = hashlib.sha256()
        for f in sorted(p for p in adapter_path(m.adapter).iterdir() if p.is_file()):
            h.update(f.name.encode())
            h.update(f.read_bytes())
        out[m.name] = h.hexdigest()
    return out


def _versions() -> dict[str, str]:
    return package_versions()  # analog-peft, torch, aihwkit, transformers, peft, numpy, scipy, pandas


def _chip_path(out: Path, chip: int) -> Path:
    return out / "chips" / f"chip_{chip:05d}.csv"


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write(path, pd.DataFrame(rows, columns=COLUMNS).to_csv(index=False))
