"""``AdaptedModel``: the shared injection / freezing / saving / merging logic of every method.

A method subclasses it with ``config_class`` (its dataclass) and ``layer_class`` (its
:class:`~analog_peft.methods.layer.AdapterLayer`), or overrides the hooks
(:meth:`base_parameters_to_train`, :meth:`extra_tensors`) when it trains existing parameters or owns
modules outside the wrapped layers. Subclasses register themselves for :func:`attach`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError
from analog_peft.methods.io import write_adapter
from analog_peft.methods.layer import AdapterLayer
from analog_peft.methods.modules import check_digital, is_linear_like
from analog_peft.methods.targets import Target, compare_fingerprints, fingerprint, head_names, resolve_targets

_MODELS: dict[str, type[AdaptedModel]] = {}
_ADAPTED_FLAG = "_analog_peft_adapted"


def _is_weight(name: str) -> bool:
    return not name.endswith("analog_ctx")  # aihwkit's 1-element autograd context is not a weight


class AdaptedModel(nn.Module):
    """A model with one adapter injected in place; ``forward``/``generate`` go to the wrapped model.

    Attributes not found here are looked up on the wrapped model (``adapted.config`` is the HF config;
    the adapter's own config is ``adapted.adapter_config``).
    """

    config_class: ClassVar[type[AdapterConfig] | None] = None
    layer_class: ClassVar[type[AdapterLayer] | None] = None
    #: Whether :meth:`merge` can fold the adapter into the base weights.
    mergeable: ClassVar[bool] = False
    #: Names (last key component) of tensors that may be all-NaN when saved: "not derived yet" markers.
    nan_sentinels: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.config_class is not None:
            _MODELS[cls.config_class.method] = cls

    def __init__(
        self, model: nn.Module, config: AdapterConfig, expected_fingerprint: dict | None = None, source: str = ""
    ) -> None:
        super().__init__()
        if getattr(model, _ADAPTED_FLAG, False) or isinstance(model, AdaptedModel):
            raise AdapterError(
                "this model already has an adapter attached; load a fresh base model, or merge_adapter() first"
            )
        self.model = model
        self.adapter_config = config
        targets = resolve_targets(model, config, accept=self.accepts) if config.uses_targets else []
        self.check_targets(targets)
        self._fingerprint = fingerprint(model, targets)
        if expected_fingerprint is not None:
            compare_fingerprints(expected_fingerprint, self._fingerprint, source)
        self._heads = head_names(model, config) if config.train_head is not False else []
        self._build(targets)
        for t in targets:
            self._replace(t.name, self.create_layer(t))
        self._base_trained = self.base_parameters_to_train()
        self._snapshot: dict[str, Tensor] = {n: p.detach().clone() for n, p in self._base_trained.items()}
        self._enabled = True
        self._freeze()
        object.__setattr__(model, _ADAPTED_FLAG, True)

    # -- hooks for methods ----------------------------------------------------------------------
    @staticmethod
    def accepts(module: nn.Module) -> bool:
        """Which module types can be targets (linear-like layers, digital or analog)."""
        return is_linear_like(module)

    def check_targets(self, targets: list[Target]) -> None:
        """Validate targets against the config before anything is injected (raise :class:`AdapterError`)."""

    def _build(self, targets: list[Target]) -> None:
        """Create modules owned by the adapted model itself (e.g. PARA's generators), before injection."""

    def create_layer(self, target: Target) -> AdapterLayer:
        assert self.layer_class is not None
        return self.layer_class(target, self.adapter_config)

    def base_parameters_to_train(self) -> dict[str, nn.Parameter]:
        """Existing base-model parameters this method trains (BitFit's biases, full fine-tuning's all)."""
        return {}

    def extra_tensors(self) -> dict[str, Tensor]:
        """State of modules the adapted model owns outside the wrapped layers (saved under these keys)."""
        return {}

    # -- plumbing -------------------------------------------------------------------------------
    def _replace(self, name: str, new: nn.Module) -> None:
        parent_name, _, child = name.rpartition(".")
        parent = self.model.get_submodule(parent_name) if parent_name else self.model
        setattr(parent, child, new)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.generate(*args, **kwargs)

    def adapter_layers(self) -> dict[str, AdapterLayer]:
        """Target name → adapter layer."""
        return {n: m for n, m in self.model.named_modules() if isinstance(m, AdapterLayer)}

    def _layer_tensors(self) -> dict[str, Tensor]:
        out = {}
        for lname, layer in self.adapter_layers().items():
            for key, value in layer.state_dict(keep_vars=True).items():
                if not key.startswith("base_layer."):
                    out[f"{lname}.{key}"] = value
        return out

    def _head_tensors(self) -> dict[str, Tensor]:
        out = {}
        for h in self._heads:
            for key, value in self.model.get_submodule(h).state_dict(keep_vars=True).items():
                out[f"{h}.{key}"] = value
        return out

    def adapter_tensors(self) -> dict[str, Tensor]:
        """Everything :meth:`save_adapter` writes: adapter parameters/buffers, trained base params, head."""
        return {**self._layer_tensors(), **self._base_trained, **self.extra_tensors(), **self._head_tensors()}

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The adapter's own trainable parameters (head excluded)."""
        tensors = {**self._layer_tensors(), **self._base_trained, **self.extra_tensors()}
        seen, out = set(), []
        for t in tensors.values():
            if isinstance(t, nn.Parameter) and t.is_floating_point() and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    def head_parameters(self) -> list[nn.Parameter]:
        adapter = {id(p) for p in self.adapter_parameters()}
        out = []
        for h in self._heads:
            out.extend(p for p in self.model.get_submodule(h).parameters() if id(p) not in adapter)
        return out

    def _freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)
        for p in self.adapter_parameters() + self.head_parameters():
            p.requires_grad_(True)

    # -- public API -----------------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.adapter_config.method

    def fingerprint(self) -> dict[str, Any]:
        """``model_type`` and the targets' names and ``[in, out]`` shapes (saved with the adapter)."""
        return dict(self._fingerprint)

    def trainable_summary(self) -> dict[str, Any]:
        """``{"trainable", "total", "percent", "adapter", "head"}`` parameter counts of the whole model."""
        named = [(n, p) for n, p in self.named_parameters() if _is_weight(n)]
        total = sum(p.numel() for _, p in named)
        trainable = sum(p.numel() for _, p in named if p.requires_grad)
        adapter = sum(p.numel() for p in self.adapter_parameters())
        head = sum(p.numel() for p in self.head_parameters())
        return {
            "trainable": trainable,
            "total": total,
            "percent": 100.0 * trainable / max(total, 1),
            "adapter": adapter,
            "head": head,
        }

    def print_trainable_parameters(self) -> None:
        s = self.trainable_summary()
        print(
            f"{self.method}: trainable {s['trainable']:,} of {s['total']:,} ({s['percent']:.4f}%); "
            f"adapter {s['adapter']:,}, head {s['head']:,}"
        )

    def regularization_loss(self) -> Tensor:
        """Extra training loss of the method (StochGRASP's λ·ΣKL); zero for the others."""
        device = next((p.device for p in self.adapter_parameters()), torch.device("cpu"))
        return torch.zeros((), device=device)

    def set_sampling(self, sampling: bool | None) -> None:
        """Stochastic methods: sample (True) or use the means (False); None follows ``train()``/``eval()``."""

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups (one group here; StochGRASP gives ρ its own learning rate)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def set_adapter_enabled(self, enabled: bool) -> None:
        """Switch the adapter on/off (off: base-model behaviour; a trained head stays in place)."""
        if enabled == self._enabled:
            return
        for layer in self.adapter_layers().values():
            layer.adapter_enabled = enabled
        with torch.no_grad():
            for name, p in self._base_trained.items():
                current = p.detach().clone()
                p.copy_(self._snapshot[name])
                self._snapshot[name] = current
        self._enabled = enabled

    def enable_adapter(self) -> None:
        self.set_adapter_enabled(True)

    def disable_adapter(self) -> None:
        self.set_adapter_enabled(False)

    @contextmanager
    def disabled(self) -> Iterator[AdaptedModel]:
        """``with adapted.disabled(): ...`` runs the base model (the trained head stays)."""
        was = self._enabled
        self.set_adapter_enabled(False)
        try:
            yield self
        finally:
            self.set_adapter_enabled(was)

    def save_adapter(self, directory: str | Path) -> Path:
        """Write ``adapter_config.json`` (config, method version, base fingerprint) and ``adapter.safetensors``."""
        if not self._enabled:
            raise AdapterError("save_adapter() inside disabled(): enable the adapter first")
        from analog_peft.conversion_config import record_of

        config = {**self.adapter_config.to_dict(), "fingerprint": self.fingerprint()}
        path = write_adapter(directory, config, self.adapter_tensors())
        record_of(self.model).save(directory)
        return path

    def merge(self) -> nn.Module:
        """Fold the adapter into the digital weights; returns the plain base model (adapter removed)."""
        if not self.mergeable:
            raise AdapterError(
                f"method {self.method!r} cannot be merged into the weights (its effect depends on the input); "
                "deploy it as digital periphery instead. Mergeable methods: grasp, stochgrasp, lora, ia3, bitfit, full"
            )
        if not self._enabled:
            raise AdapterError("merge() inside disabled(): enable the adapter first")
        layers = self.adapter_layers()
        for name, layer in layers.items():
            check_digital(layer.base_layer, name, f"merge {self.method} into")
        for name, layer in layers.items():
            self._replace(name, layer.merge())
        self.unload_hooks()
        object.__setattr__(self.model, _ADAPTED_FLAG, False)
        return self.model

    def after_load(self) -> None:
        """Called by :func:`load_adapter` after the saved tensors were copied in."""

    def unload_hooks(self) -> None:
        """Remove forward hooks the method registered on the base model (none by default)."""
