"""PEFT adapters in analog_peft's toolkit: ``method = "peft"`` training, PEFT-format folders, base checks.

A PEFT adapter folder is what ``save_pretrained`` writes (``adapter_config.json`` with a ``peft_type``,
``adapter_model.safetensors``) plus ``analog_peft_base.json``: the base fingerprint (model type, every
target's ``[in, out]`` shape and their digest, the base alias) and the tensors' checksum, so a folder made
for another base or corrupted on disk is refused with one line. Folders saved by plain PEFT (no sidecar)
load too; their base is checked by ``base_model_name_or_path`` alone.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import peft
import torch
from peft import PeftConfig, PeftModel, get_peft_model
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING
from peft.utils.other import AuxiliaryTrainingWrapper
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from analog_peft.methods.errors import AdapterError, AdapterFileError
from analog_peft.methods.io import CHECKSUM_KEY, tensor_checksum, verify_tensors
from analog_peft.methods.targets import Target, compare_fingerprints, fingerprint

METHOD = "peft"
CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
SIDECAR = "analog_peft_base.json"
FORMAT = "analog_peft.peft/1"


def peft_types() -> list[str]:
    return sorted(str(t.value) if hasattr(t, "value") else str(t) for t in PEFT_TYPE_TO_CONFIG_MAPPING)


def peft_config_from_dict(data: Any, task_type: str | None = None) -> PeftConfig:
    """A PEFT config from ``{"peft_type": "LORA", <fields>}``; ``task_type`` fills a missing ``task_type``.

    Raises :class:`AdapterError` (one line naming the problem and the fix) for anything PEFT refuses.
    """
    if isinstance(data, PeftConfig):
        return data
    if not isinstance(data, dict) or not data.get("peft_type"):
        raise AdapterError(f'peft_config needs a peft_type, e.g. {{peft_type = "LORA", r = 8}}; known: {peft_types()}')
    kind = str(data["peft_type"]).upper()
    cls = next((c for t, c in PEFT_TYPE_TO_CONFIG_MAPPING.items() if str(getattr(t, "value", t)) == kind), None)
    if cls is None:
        raise AdapterError(f"peft_config: unknown peft_type {data['peft_type']!r}; known: {peft_types()}")
    values = {k: v for k, v in data.items() if k != "peft_type"}
    if task_type and not values.get("task_type"):
        values["task_type"] = task_type
    fields = sorted(cls.__dataclass_fields__)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise AdapterError(f"peft_config: {cls.__name__} has no field(s) {unknown}; its fields: {fields}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        message = " ".join(str(exc).split())
        raise AdapterError(f"peft_config ({kind}): {message}") from None


def task_type_of(model: nn.Module) -> str | None:
    """PEFT's ``task_type`` for a Hugging Face model class (sequence classifier or causal LM)."""
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "CAUSAL_LM"
    return None


def is_peft_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds a PEFT adapter (``adapter_config.json`` with a ``peft_type``)."""
    path = Path(directory) / CONFIG_NAME
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and "peft_type" in data


class PeftAdapted(nn.Module):
    """A ``PeftModel`` with the toolkit's adapted-model API (training loop, checkpoints, deployment)."""

    method = METHOD

    def __init__(self, peft_model: PeftModel) -> None:
        super().__init__()
        self.peft_model = peft_model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.peft_model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.peft_model.generate(*args, **kwargs)

    @property
    def base_model(self) -> nn.Module:
        """The wrapped Hugging Face model (PEFT's layers injected in it)."""
        return self.peft_model.get_base_model()

    def peft_config(self) -> PeftConfig:
        return self.peft_model.peft_config[self.peft_model.active_adapter]

    def head_parameters(self) -> list[nn.Parameter]:
        """Trainable copies of the task head (PEFT's ``modules_to_save``)."""
        out = []
        for module in self.peft_model.modules():
            if isinstance(module, AuxiliaryTrainingWrapper):
                out += [p for p in module.parameters() if p.requires_grad]
        return out

    def adapter_parameters(self) -> list[nn.Parameter]:
        head = {id(p) for p in self.head_parameters()}
        return [p for p in self.peft_model.parameters() if p.requires_grad and id(p) not in head]

    def trainable_summary(self) -> dict[str, Any]:
        """``{"trainable", "total", "percent", "adapter", "head"}`` parameter counts (as the other methods)."""
        named = [(n, p) for n, p in self.peft_model.named_parameters() if not n.endswith("analog_ctx")]
        total = sum(p.numel() for n, p in named if ".original_module." not in n)  # the head counted once
        trainable = sum(p.numel() for _, p in named if p.requires_grad)
        head = sum(p.numel() for p in self.head_parameters())
        return {"trainable": trainable, "total": total, "percent": 100.0 * trainable / max(total, 1),
                "adapter": trainable - head, "head": head}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.peft_model.parameters() if p.requires_grad], "lr": lr}]

    def regularization_loss(self) -> Tensor:
        device = next((p.device for p in self.adapter_parameters()), torch.device("cpu"))
        return torch.zeros((), device=device)

    def set_sampling(self, sampling: bool | None) -> None:
        """No stochastic parameters."""

    def fingerprint(self) -> dict[str, Any]:
        return base_fingerprint(self.base_model, targeted_names(self.peft_model))

    def save_adapter(self, directory: str | Path) -> Path:
        """``save_pretrained`` into ``directory``, plus the base fingerprint and tensor checksum."""
        directory = Path(directory)
        self.peft_model.save_pretrained(str(directory))
        tensors = _read_weights(directory)
        sidecar = {"format": FORMAT, "fingerprint": self.fingerprint(), "peft_version": peft.__version__,
                   CHECKSUM_KEY: tensor_checksum(tensors)}
        (directory / SIDECAR).write_text(json.dumps(sidecar, indent=2, sort_keys=True))
        from analog_peft.conversion_config import record_of

        record_of(self.base_model).save(directory)
        return directory

    def merge(self) -> nn.Module:
        """The fused model: tuner adapters folded into the (analog) target weights, the trained head in place.

        Prompt-based adapters have nothing to fold: the ``PeftModel`` itself is returned (prompt digital).
        """
        if self.peft_config().is_prompt_learning:
            return self.peft_model
        return self.peft_model.merge_and_unload()


def targeted_names(peft_model: PeftModel) -> list[str]:
    """Names (in the base model) of the modules PEFT's tuner layers wrap, in module order."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    base = peft_model.get_base_model()
    return [n for n, m in base.named_modules() if isinstance(m, BaseTunerLayer)]


def base_fingerprint(model: nn.Module, names: list[str]) -> dict[str, Any]:
    """The project's fingerprint (model type, ``[in, out]`` of every target, digest, base alias)."""
    targets = []
    for name in names:
        module = model.get_submodule(name)
        while hasattr(module, "base_layer"):
            module = module.base_layer
        targets.append(Target(name, module, None, None))
    return fingerprint(model, targets)


def attach_peft(model: nn.Module, config: dict[str, Any] | PeftConfig, seed: int = 0) -> PeftAdapted:
    """``get_peft_model`` with the adapter's random init seeded by ``seed`` (digital or analog base)."""
    import analog_peft.peft_bridge  # noqa: F401  (registers the analog layers)
    from analog_peft.chips import derive_seed

    peft_config = peft_config_from_dict(config, task_type_of(model))
    _train_pooler_head(model, peft_config)
    with torch.random.fork_rng(devices=[]), _quiet():
        torch.manual_seed(derive_seed(seed, "peft-init"))
        try:
            peft_model = get_peft_model(model, peft_config)
        except (ValueError, TypeError, KeyError) as exc:
            message = " ".join(str(exc).split())
            raise AdapterError(f"PEFT cannot attach {peft_config.peft_type} to this model: {message}") from None
    return PeftAdapted(peft_model)


def _train_pooler_head(model: nn.Module, peft_config: PeftConfig) -> None:
    """A head that pools through the pooler (``cls``) trains it: add it to PEFT's ``modules_to_save``."""
    from analog_peft.heads import CLASSIFIER_MODULES, head_module_names

    extra = [n for n in head_module_names(model) if n not in CLASSIFIER_MODULES]
    if extra and hasattr(peft_config, "modules_to_save"):
        peft_config.modules_to_save = sorted({*(peft_config.modules_to_save or []), *extra})


def check_base(model: nn.Module, directory: str | Path) -> None:
    """Refuse a PEFT adapter made for another base (name, then fingerprint) or corrupted on disk."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG_NAME).read_text())
    trained_on, here = _canonical(config.get("base_model_name_or_path")), _canonical(_name_or_path(model))
    if trained_on and here and trained_on != here:
        raise AdapterFileError(
            f"PEFT adapter {directory} was trained on base {trained_on!r}, this model is {here!r}; "
            f"deploy it on {trained_on!r} (e.g. --base {trained_on}) or retrain it on this base"
        )
    sidecar = directory / SIDECAR
    if not sidecar.is_file():
        return
    try:
        meta = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterFileError(f"{sidecar} is not valid JSON ({exc}); re-save the adapter") from None
    saved = meta.get("fingerprint") or {}
    try:
        actual = base_fingerprint(model, list(saved.get("targets", {})))
    except AttributeError:
        actual = {"model_type": getattr(getattr(model, "config", None), "model_type", None), "targets": {}}
    compare_fingerprints(saved, actual, str(directory))
    verify_tensors(_read_weights(directory), meta, directory)


def load_peft(model: nn.Module, directory: str | Path, trainable: bool = True) -> PeftAdapted:
    """``PeftModel.from_pretrained`` after :func:`check_base` (``trainable``: to resume training)."""
    import analog_peft.peft_bridge  # noqa: F401  (registers the analog layers)

    directory = Path(directory)
    if not is_peft_dir(directory):
        raise AdapterFileError(
            f"{directory} is not a PEFT adapter folder (no {CONFIG_NAME} with a peft_type); pass a folder "
            "written by save_pretrained, or drop the 'peft:' prefix for analog_peft adapters"
        )
    check_base(model, directory)
    with _quiet():
        return PeftAdapted(PeftModel.from_pretrained(model, str(directory), is_trainable=trainable))


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the deprecation notice transformers gives on every PEFT wrap (``is_gradient_checkpointing``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def _name_or_path(model: nn.Module) -> str | None:
    return getattr(model, "name_or_path", None) or getattr(getattr(model, "config", None), "_name_or_path", None)


def _canonical(name: str | None) -> str | None:
    if not name:
        return None
    from analog_peft.models import alias_of

    return alias_of(name) or (str(Path(name).resolve()) if Path(name).is_dir() else name)


def _read_weights(directory: Path) -> dict[str, Tensor]:
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise AdapterFileError(f"{path} not found: a PEFT adapter folder holds {CONFIG_NAME} and {WEIGHTS_NAME}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise AdapterFileError(f"{path} is corrupt or truncated ({exc}); re-save the adapter") from None


__all__ = ["METHOD", "PeftAdapted", "attach_peft", "check_base", "is_peft_dir", "load_peft",
           "peft_config_from_dict", "task_type_of"]
