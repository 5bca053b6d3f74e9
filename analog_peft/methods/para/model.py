"""PARA adapted model: one generator per block, hooks that pool the prompt and share the vectors."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from analog_peft.architectures import DECODER_ONLY
from analog_peft.methods.errors import AdapterError
from analog_peft.methods.layer import layer_generator
from analog_peft.methods.model import AdaptedModel
from analog_peft.methods.para.config import ParaConfig
from analog_peft.methods.para.layer import ParaLayer, ParaState
from analog_peft.methods.scaling import scaling_plan
from analog_peft.methods.targets import Target, model_type

_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


def masked_mean(hidden: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``[B, T, d]`` over the tokens where the 2-D ``mask`` is 1 (all tokens without a mask)."""
    if mask is None or mask.dim() != 2 or mask.shape[0] != hidden.shape[0]:
        return hidden.mean(dim=1)
    mask = mask[:, -hidden.shape[1] :].to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def _cache_length(cache: Any) -> int:
    if cache is None:
        return 0
    length = getattr(cache, "get_seq_length", None)
    if callable(length):
        return int(length())
    return int(cache[0][0].shape[-2]) if len(cache) else 0


class ParaGenerator(nn.Sequential):
    """``Linear(d→r) → act → Linear(r→n)``, the up-projection zero-initialised."""

    def __init__(self, d: int, r: int, n: int, activation: str, generator: torch.Generator) -> None:
        down = nn.Linear(d, r)
        bound = 1.0 / d**0.5
        with torch.no_grad():
            down.weight.uniform_(-bound, bound, generator=generator)
            down.bias.uniform_(-bound, bound, generator=generator)
        up = nn.Linear(r, n)
        nn.init.zeros_(up.weight)
        nn.init.zeros_(up.bias)
        super().__init__(down, _ACTIVATIONS[activation](), up)


class ParaModel(AdaptedModel):
    config_class = ParaConfig
    layer_class = ParaLayer
    mergeable = False

    def _build(self, targets: list[Target]) -> None:
        cfg: ParaConfig = self.adapter_config
        loose = [t.name for t in targets if t.block is None or t.role is None]
        if loose:
            raise AdapterError(
                f"para: targets {loose[:3]} are not role modules of a known transformer block; PARA needs "
                "block structure (analog_peft.architectures): use target_roles instead of target_modules"
            )
        self._state = ParaState()
        self._prompt_mask: Tensor | None = None
        roles = tuple(cfg.target_roles or cfg.default_roles)
        self._plans, self._offsets, sizes = {}, {}, {}
        for t in targets:
            self._plans[t.name] = scaling_plan(t, roles, [])
            mode, slices = self._plans[t.name]
            n = _width(t, 0) if mode == "in" else sum(b - a for a, b in slices or [(0, _width(t, 1))])
            self._offsets[t.name] = sizes.get(t.block, 0)
            sizes[t.block] = sizes.get(t.block, 0) + n
        d = _hidden_size(self.model, targets)
        self._blocks = list(sizes)
        self.generators = nn.ModuleDict(
            {
                _key(b): ParaGenerator(d, cfg.r, n, cfg.activation, layer_generator(cfg.seed, b)).to(
                    next(self.model.parameters()).device
                )
                for b, n in sizes.items()
            }
        )
        self._decoder = cfg.decoder if cfg.decoder is not None else model_type(self.model) in DECODER_ONLY
        self._signature = inspect.signature(self.model.forward)
        self._handles = [self.model.register_forward_pre_hook(self._on_model_call, with_kwargs=True)]
        for b in self._blocks:
            hook = self._block_hook(b)
            self._handles.append(self.model.get_submodule(b).register_forward_pre_hook(hook, with_kwargs=True))

    def create_layer(self, target: Target) -> ParaLayer:
        mode, slices = self._plans[target.name]
        return ParaLayer(target, self.adapter_config, mode, slices, self._state, self._offsets[target.name])

    def extra_tensors(self) -> dict[str, Tensor]:
        return {f"para_generators.{k}": v for k, v in self.generators.state_dict(keep_vars=True).items()}

    def set_prompt_mask(self, mask: Tensor | None) -> None:
        """Pool over these tokens (e.g. only the prompt of a decoder training example) instead of the
        attention mask, until reset with None."""
        self._prompt_mask = mask

    def prompt_vectors(self) -> dict[str, Tensor]:
        """Block name → the ``[B, n]`` vectors ``v`` of the last call (scales are ``1 + v``)."""
        return {b: v.detach() for b, v in self._state.vectors.items()}

    # -- hooks ----------------------------------------------------------------------------------
    def _on_model_call(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        try:
            call = self._signature.bind_partial(*args, **kwargs).arguments
        except TypeError:
            call = dict(kwargs)
        extra = call.get("kwargs", {}) if isinstance(call.get("kwargs"), dict) else {}
        call = {**extra, **call}
        ids = call.get("input_ids")
        cache = call.get("cache", call.get("past_key_values"))
        state = self._state
        state.reuse = False
        if self._decoder and state.vectors:
            if _cache_length(cache) > 0:
                state.reuse = True
            elif not self.training and ids is not None and state.prompt_ids is not None:
                prompt = state.prompt_ids
                state.reuse = (
                    ids.shape[0] == prompt.shape[0]
                    and ids.shape[1] > prompt.shape[1]
                    and torch.equal(ids[:, : prompt.shape[1]], prompt)
                )
        if not state.reuse:
            state.vectors = {}
            state.mask = self._prompt_mask if self._prompt_mask is not None else call.get("attention_mask")
            state.prompt_ids = ids.detach() if isinstance(ids, Tensor) else None

    def _block_hook(self, block: str):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if not self._enabled or (self._state.reuse and block in self._state.vectors):
                return
            hidden = args[0] if args else kwargs.get("hidden_states")
            pooled = masked_mean(hidden, self._state.mask)
            self._state.vectors[block] = self.generators[_key(block)](pooled)

        return hook

    def unload_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _key(block: str) -> str:
    return block.replace(".", "__")


def _width(target: Target, axis: int) -> int:
    from analog_peft.methods.modules import features

    return features(target.module)[axis]


def _hidden_size(model: nn.Module, targets: list[Target]) -> int:
    from analog_peft.methods.modules import features

    attention = [t for t in targets if t.role in ("q", "v", "qkv")]
    if attention:
        return features(attention[0].module)[0]
    size = getattr(getattr(model, "config", None), "hidden_size", None)
    if size is None:
        raise AdapterError("para: cannot infer the hidden size; target a Q or V projection")
    return int(size)
