"""Where the parts of each supported transformer family live (blocks, Q/K/V/O, FFN, heads).

Conversion presets ("all linear layers in the transformer blocks") and the adapters' default targets are
written against *roles*, not module names; this table resolves roles to names per ``config.model_type``.
Models of other types still work when modules are named explicitly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ArchSpec:
    """Module layout of one model family.

    ``block`` matches the name of every transformer block; ``roles`` maps a role to the module's name
    relative to its block (``qkv`` for fused projections such as GPT-2's ``c_attn``); ``heads`` are
    output modules kept digital (task heads, tied LM heads).
    """

    model_type: str
    block: str
    roles: dict[str, str]
    heads: tuple[str, ...]

    def block_names(self, model: nn.Module) -> list[str]:
        pattern = re.compile(self.block)
        return [name for name, _ in model.named_modules() if pattern.fullmatch(name)]

    def role_names(self, model: nn.Module, role: str) -> list[str]:
        """Full names of the module playing ``role`` in every block (empty if the family has no such role)."""
        rel = self.roles.get(role)
        if rel is None:
            return []
        modules = dict(model.named_modules())
        return [f"{b}.{rel}" for b in self.block_names(model) if f"{b}.{rel}" in modules]

    def locate(self, name: str) -> tuple[int, str] | None:
        """``(block number, name inside the block)`` of module ``name`` (``bert.encoder.layer.3.attention.self.query``
        → ``(3, "attention.self.query")``), else None (embeddings, heads)."""
        match = re.fullmatch(f"({self.block})\\.(.+)", name)
        if match is None:
            return None
        return int(re.search(r"(\d+)$", match.group(1)).group(1)), match.group(2)

    def role_of(self, name: str) -> str | None:
        """The role module ``name`` plays in its block (``q``, ``ffn_down``, ...), else None."""
        where = self.locate(name)
        return next((role for role, rel in self.roles.items() if where and where[1] == rel), None)

    def is_head(self, name: str) -> bool:
        return any(name == h or name.endswith("." + h) or name.startswith(h + ".") for h in self.heads)


_BERT_ROLES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "o": "attention.output.dense",
    "ffn_up": "intermediate.dense",
    "ffn_down": "output.dense",
}

SPECS: dict[str, ArchSpec] = {
    "bert": ArchSpec("bert", r"(?:.+\.)?encoder\.layer\.\d+", _BERT_ROLES, ("classifier", "cls")),
    "roberta": ArchSpec("roberta", r"(?:.+\.)?encoder\.layer\.\d+", _BERT_ROLES, ("classifier", "lm_head")),
    "gpt2": ArchSpec(
        "gpt2",
        r"(?:.+\.)?h\.\d+",
        {"qkv": "attn.c_attn", "o": "attn.c_proj", "ffn_up": "mlp.c_fc", "ffn_down": "mlp.c_proj"},
        ("lm_head", "score"),
    ),
    "llama": ArchSpec(
        "llama",
        r"(?:.+\.)?layers\.\d+",
        {
            "q": "self_attn.q_proj",
            "k": "self_attn.k_proj",
            "v": "self_attn.v_proj",
            "o": "self_attn.o_proj",
            "ffn_gate": "mlp.gate_proj",
            "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj",
        },
        ("lm_head", "score"),
    ),
}
SPECS["smollm"] = SPECS["llama"]
SPECS["mistral"] = SPECS["llama"]
SPECS["qwen2"] = SPECS["llama"]

def name_matcher(pattern: str) -> Callable[[str], bool]:
    """The module-name test of ``pattern``, one syntax for conversion, adapters and exclusions: ``re:<regex>``
    full-matches the name, anything else matches the whole name or a dotted suffix (``query`` matches
    ``encoder.layer.0.attention.self.query``). An invalid regex raises ``ValueError`` naming it and the fix."""
    if not pattern.startswith("re:"):
        return lambda name: name == pattern or name.endswith("." + pattern)
    try:
        rx = re.compile(pattern[3:])
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression ({exc}); fix the regex after 're:'") from None
    return lambda name: rx.fullmatch(name) is not None


def layer_selector(model: nn.Module, patterns: list[str], what: str = "layers") -> Callable[[str], bool]:
    """The test "is this (conversion-time) layer name selected by any of ``patterns``": ``role:<r>`` (the
    module playing role ``r`` — ``q``, ``k``, ``v``, ``o``, ``qkv``, ``ffn_up``, ``ffn_down``, ``ffn_gate`` — in
    every block), ``block:<i>`` (every module of the ``i``-th transformer block), or a module-name pattern
    (:func:`name_matcher`). An unknown role or block raises ``ValueError`` naming the choices."""
    tests = []
    for pattern in patterns:
        kind, _, arg = pattern.partition(":")
        if kind == "role":
            spec = spec_for(model)
            if arg not in spec.roles:
                raise ValueError(f"{what}: {pattern!r}: {spec.model_type} has no role {arg!r}; roles: {sorted(spec.roles)}")
            tests.append(lambda name, r=arg, spec=spec: spec.role_of(name) == r)
        elif kind == "block":
            spec = spec_for(model)
            n_blocks = len(spec.block_names(model))
            if not arg.isdigit() or int(arg) >= n_blocks:
                raise ValueError(f"{what}: {pattern!r}: blocks are block:0 … block:{n_blocks - 1}")
            tests.append(lambda name, i=int(arg), spec=spec: (spec.locate(name) or (None,))[0] == i)
        else:
            tests.append(name_matcher(pattern))
    return lambda name: any(test(name) for test in tests)


#: model types that are encoders only (no causal LM), for configs that name no architecture (GGUF)
ENCODER_ONLY = frozenset({"bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2",
                          "xlm-roberta", "mpnet", "camembert", "ernie", "nomic_bert", "modernbert"})
#: model types that are decoder-only causal LMs
DECODER_ONLY = frozenset({"gpt2", "llama", "smollm", "mistral", "qwen2"})


def spec_for(model: nn.Module) -> ArchSpec:
    """The :class:`ArchSpec` of ``model`` (a Hugging Face model), by ``config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in SPECS:
        raise ValueError(
            f"no built-in layout for model_type={model_type!r} (known: {sorted(SPECS)}). "
            "Name the modules explicitly (a list of names or a regex) instead of using a preset or role."
        )
    return SPECS[model_type]

