"""The head-only baseline: everything frozen except the task head, saved like an adapter (safetensors + JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from analog_peft.heads import head_module_names
from analog_peft.methods import AdapterFileError
from analog_peft.methods.io import read_config, read_tensors, verify_tensors, write_adapter
from analog_peft.methods.targets import compare_heads, head_entry

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter.safetensors"
FORMAT = "analog_peft.head/1"


def _model_type(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)


class HeadOnlyModel(nn.Module):
    """Wraps a model, freezes it, and trains only the head modules (``classifier`` / ``score``, and the pooler
    when the head pools through it: :func:`analog_peft.heads.head_module_names`).

    Offers the subset of :class:`~analog_peft.methods.AdaptedModel`'s API the trainer uses.
    """

    method = "head"

    def __init__(self, model: nn.Module, head_modules: list[str] | None = None) -> None:
        super().__init__()
        self.model = model
        names = list(head_modules or head_module_names(model))
        if not names:
            raise ValueError("head-only training: the model has no head module (classifier / score)")
        self.heads = names
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.head_parameters():
            p.requires_grad_(True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n in self.heads for p in self.model.get_submodule(n).parameters()]

    def adapter_parameters(self) -> list[nn.Parameter]:
        return []

    def adapter_tensors(self) -> dict[str, Tensor]:
        return {f"{n}.{k}": v for n in self.heads for k, v in self.model.get_submodule(n).state_dict().items()}

    def trainable_summary(self) -> dict[str, Any]:
        total = sum(p.numel() for n, p in self.model.named_parameters() if not n.endswith("analog_ctx"))
        head = sum(p.numel() for p in self.head_parameters())
        return {"trainable": head, "total": total, "percent": 100.0 * head / max(total, 1), "adapter": 0, "head": head}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        return [{"params": self.head_parameters(), "lr": lr}]

    def regularization_loss(self) -> Tensor:
        return torch.zeros(())

    def set_sampling(self, sampling: bool | None) -> None:
        """No stochastic parameters."""

    def save_adapter(self, directory: str | Path) -> Path:
        """Write ``adapter_config.json`` (with the tensors' checksum) and ``adapter.safetensors``."""
        config = {"method": self.method, "head_modules": self.heads,
                  "fingerprint": {"model_type": _model_type(self.model), **head_entry(self.model)}}
        return write_adapter(directory, config, self.adapter_tensors(), fmt=FORMAT)


def is_head_only(directory: str | Path) -> bool:
    """Whether ``directory`` holds a head-only adapter (unreadable configs: False, the loader reports them)."""
    path = Path(directory) / CONFIG_NAME
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("method") == HeadOnlyModel.method


def load_head_only(model: nn.Module, directory: str | Path) -> HeadOnlyModel:
    """Rebuild a :class:`HeadOnlyModel` on ``model`` and load its saved head."""
    directory = Path(directory)
    config, _ = read_config(directory)
    saved_type = (config.get("fingerprint") or {}).get("model_type")
    if saved_type != _model_type(model):
        raise AdapterFileError(f"{directory}: head saved for model_type={saved_type!r}, not {_model_type(model)!r}")
    compare_heads(config.get("fingerprint") or {}, head_entry(model), str(directory))
    tensors, _ = read_tensors(directory)
    verify_tensors(tensors, config, directory)
    adapted = HeadOnlyModel(model, config["head_modules"])
    expected = adapted.adapter_tensors()
    if set(tensors) != set(expected):
        raise AdapterFileError(f"{directory}: head tensors {sorted(tensors)} do not match {sorted(expected)}")
    with torch.no_grad():
        for key, value in expected.items():
            value.copy_(tensors[key])
    return adapted
