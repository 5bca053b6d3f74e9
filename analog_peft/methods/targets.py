"""Resolving which modules an adapter targets (names, regexes, roles), the task head, and fingerprints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from torch import nn

from analog_peft.architectures import SPECS, ArchSpec, name_matcher
from analog_peft.methods.config import AdapterConfig
from analog_peft.methods.errors import AdapterError
from analog_peft.methods.modules import features, is_linear_like

_DEFAULT_HEADS = ("classifier", "score")


@dataclass
class Target:
    """One module to adapt: full name, the module, and its role when known (``q``, ``qkv``, ``ffn_down``...)."""

    name: str
    module: nn.Module
    role: str | None
    block: str | None


def model_type(model: nn.Module) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)


def arch_spec(model: nn.Module) -> ArchSpec | None:
    return SPECS.get(model_type(model))


def _patterns(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def matches(name: str, pattern: str) -> bool:
    """PEFT-style match: ``re:<regex>`` full-matches the name, anything else matches as a dotted suffix.

    An invalid regex raises :class:`AdapterError` naming the pattern.
    """
    try:
        return name_matcher(pattern)(name)
    except ValueError as exc:
        raise AdapterError(f"module pattern {exc}") from None


def _role_index(model: nn.Module, spec: ArchSpec | None) -> dict[str, tuple[str, str]]:
    """Module name → (role, block name) for every role module of the family."""
    if spec is None:
        return {}
    index = {}
    for block in spec.block_names(model):
        for role, rel in spec.roles.items():
            index[f"{block}.{rel}"] = (role, block)
    return index


def _roles_to_names(model: nn.Module, spec: ArchSpec, roles: list[str]) -> list[str]:
    wanted: list[str] = []
    for role in roles:
        if role not in spec.roles and role in ("q", "k", "v") and "qkv" in spec.roles:
            role = "qkv"
        if role not in spec.roles:
            raise AdapterError(
                f"unknown role {role!r} for model_type={spec.model_type!r}; its roles are {sorted(spec.roles)}. "
                "Pass target_roles from that list or name modules with target_modules."
            )
        wanted.extend(n for n in spec.role_names(model, role) if n not in wanted)
    return wanted


def resolve_targets(model: nn.Module, config: AdapterConfig, accept=is_linear_like) -> list[Target]:
    """The target modules of ``config`` in ``model``, in module order; heads are never targets.

    Raises :class:`AdapterError` naming the unmatched pattern or role and listing valid names.
    """
    spec = arch_spec(model)
    roles = _role_index(model, spec)
    named = dict(model.named_modules())
    candidates = [
        n for n, m in named.items() if n and accept(m) and not (spec is not None and spec.is_head(n))
    ]
    heads = set(head_names(model, config))
    candidates = [n for n in candidates if not any(n == h or n.startswith(h + ".") for h in heads)]

    patterns = _patterns(config.target_modules)
    if patterns:
        chosen = []
        for pattern in patterns:
            hits = [n for n in candidates if matches(n, pattern)]
            if not hits:
                raise AdapterError(
                    f"target {pattern!r} matches no adaptable module of this {model_type(model) or 'model'}. "
                    f"Valid names include {_short(candidates)}; use a suffix (e.g. 'query') or 're:<regex>'."
                )
            chosen.extend(n for n in hits if n not in chosen)
    else:
        if spec is None:
            raise AdapterError(
                f"no default targets for model_type={model_type(model)!r} (not in analog_peft.architectures); "
                f"pass target_modules, e.g. one of {_short(candidates)}"
            )
        wanted_roles = list(config.target_roles) if config.target_roles else list(config.default_roles)
        if wanted_roles == ["all_linear"]:
            wanted_roles = list(spec.roles)
        chosen = _roles_to_names(model, spec, wanted_roles)
        chosen = [n for n in chosen if n in candidates]
    excludes = _patterns(config.exclude_modules)
    chosen = [n for n in chosen if not any(matches(n, p) for p in excludes)]
    if not chosen:
        raise AdapterError(f"no modules left to adapt after exclude_modules={excludes}")
    order = {n: i for i, n in enumerate(named)}
    chosen.sort(key=order.__getitem__)
    out = []
    for n in chosen:
        role, block = roles.get(n, (None, None))
        out.append(Target(n, named[n], role, block))
    return out


def _short(names: list[str], k: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return f"[{shown}{', ...' if len(names) > k else ''}] ({len(names)} in all)"


def _tied_to_embeddings(model: nn.Module, module: nn.Module) -> bool:
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    if emb is None or getattr(emb, "weight", None) is None:
        return False
    ptr = emb.weight.data_ptr()
    return any(p.data_ptr() == ptr for p in module.parameters())


def head_names(model: nn.Module, config: AdapterConfig) -> list[str]:
    """Top-most modules acting as the task head (tied LM heads excluded when ``train_head`` is None)."""
    from analog_peft.heads import head_module_names, head_record

    spec = arch_spec(model)
    recorded = head_module_names(model) if head_record(model) is not None else None
    wanted = _patterns(config.head_modules) or recorded or list(spec.heads if spec else _DEFAULT_HEADS)
    found: list[str] = []
    for name, module in model.named_modules():
        if not name or any(name.startswith(f + ".") for f in found):
            continue
        if any(matches(name, w) for w in wanted) and any(True for _ in module.parameters()):
            found.append(name)
    if config.train_head is None:
        named = dict(model.named_modules())
        found = [n for n in found if not _tied_to_embeddings(model, named[n])]
    if config.train_head and not found:
        raise AdapterError(
            f"train_head=True but no head module named {wanted} exists; set head_modules to the head's name"
        )
    return found


def fingerprint(model: nn.Module, targets: list[Target]) -> dict[str, Any]:
    """What an adapter was made for: ``model_type`` and every target's name and ``[in, out]`` shape, their
    ``digest``, and ``base_model`` (the alias or path it was loaded from; informative, not in the digest)."""
    shapes = {t.name: list(features(t.module)) for t in targets}
    body = {"model_type": model_type(model), "targets": shapes}
    out = {**body, "digest": _digest(body), **head_entry(model)}
    base = base_name(model)
    if base:
        out["base_model"] = base
    return out


def head_entry(model: nn.Module) -> dict[str, Any]:
    """``{"head": {"pooling": ...}}`` for a classifier built with a head record (:mod:`analog_peft.heads`)."""
    from analog_peft.heads import head_record

    record = head_record(model)
    return {"head": {"pooling": record.pooling}} if record is not None else {}


def compare_heads(saved: dict[str, Any], actual: dict[str, Any], source: str) -> None:
    """Refuse an adapter trained on another pooling than the head of the model it is loaded onto."""
    from analog_peft.heads import UNRECORDED
    from analog_peft.methods.errors import AdapterFileError

    if "head" not in actual and "head" not in saved:
        return
    want = (saved.get("head") or {}).get("pooling", UNRECORDED)
    have = (actual.get("head") or {}).get("pooling", "the model class's own (no head record)")
    if want != have:
        raise AdapterFileError(
            f"adapter {source} was trained with pooling {want!r}, this model's head pools {have!r}: load the base "
            f"with pooling={want!r} (analog_peft.models.load_classifier(..., pooling={want!r}); deploy() reads it "
            "from the adapter)"
        )


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def base_name(model: nn.Module) -> str | None:
    """The alias (``minilm-l6``) or path/hub name the Hugging Face model was loaded from, if known."""
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    if not path:
        return None
    from analog_peft.models import alias_of

    return alias_of(path) or path


def compare_fingerprints(saved: dict[str, Any], actual: dict[str, Any], source: str) -> None:
    """Raise :class:`AdapterFileError`-style errors when an adapter does not fit this base model."""
    from analog_peft.methods.errors import AdapterFileError

    trained_on = f" ({saved['base_model']})" if saved.get("base_model") else ""
    fix = f"Load it onto the base model it was trained for{trained_on} (same architecture, size and conversion)."
    if saved.get("model_type") != actual.get("model_type"):
        raise AdapterFileError(
            f"adapter {source} was made for model_type={saved.get('model_type')!r}, "
            f"this model is {actual.get('model_type')!r}. {fix}"
        )
    st, at = saved.get("targets", {}), actual.get("targets", {})
    missing = [n for n in st if n not in at]
    extra = [n for n in at if n not in st]
    if missing or extra:
        raise AdapterFileError(
            f"adapter {source}: its targets differ from the ones resolved on this model: recorded in the "
            f"adapter but not resolved here {_short(missing)}; resolved here but not in the adapter "
            f"{_short(extra)}. {fix}"
        )
    for n, shape in st.items():
        if list(shape) != list(at[n]):
            raise AdapterFileError(
                f"adapter {source}: module {n!r} has shape [in, out]={shape} in the adapter's base but "
                f"{at[n]} here. {fix}"
            )
    _compare_digest(saved, actual, source)
    compare_heads(saved, actual, source)


def _compare_digest(saved: dict[str, Any], actual: dict[str, Any], source: str) -> None:
    """Refuse an adapter whose recorded base digest differs from the base it is loaded into."""
    from analog_peft.methods.errors import AdapterFileError

    if "digest" not in saved or saved["digest"] == actual.get("digest"):
        return
    trained_on = saved.get("base_model") or f"a base with fingerprint digest {saved['digest']!r}"
    here = actual.get("base_model") or actual.get("model_type")
    raise AdapterFileError(
        f"adapter {source}: base fingerprint digest {saved['digest']!r} does not match this base model "
        f"({here}, digest {actual.get('digest')!r}); the adapter was trained on {trained_on}: pass that base "
        "(e.g. --base), or re-save the adapter if its adapter_config.json was edited"
    )
