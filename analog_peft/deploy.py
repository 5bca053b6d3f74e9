"""Deploy a trained adapter on an analog base: ``periphery`` (adapter digital, base analog) or ``fused``.

* ``periphery`` — convert the pretrained base, then attach the adapter around the analog layers. The
  analog tiles hold the *pretrained* weights only, so chip ``k`` programs bit-identical tiles for every
  method (the seeds depend on the run seed, the chip and the tile, never on the method): comparisons
  between methods on the same chip are paired.
* ``fused`` — fold the adapter into the digital weights first (GRASP, StochGRASP means, LoRA, (IA)^3),
  then convert: the adapter's effect is programmed and suffers the same device noise.

Hugging Face PEFT adapters (a ``save_pretrained`` folder, ``peft:DIR`` or a plain ``DIR``) are loaded onto
the converted base through :mod:`analog_peft.peft_bridge`; ``fused`` folds them into the tiles' target
weights (``merge_and_unload``, re-mapped like a conversion) before any chip is programmed. Prompt-based
PEFT adapters have nothing to fold and stay digital in both deployments.

Nothing programmed is ever saved: a deployment is rebuilt from the digital base, the adapter and the
configuration, and a chip from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from analog_peft.conversion_config import ConversionConfig, load_conversion, resolve_rpu_choice, rpu_dict
from analog_peft.convert import ConversionReport
from analog_peft.convert import convert as convert_model
from analog_peft.methods import load_adapter
from analog_peft.models import load_classifier

DEPLOYMENTS = ("periphery", "fused")
#: ``peft:DIR`` names a Hugging Face PEFT adapter folder (``save_pretrained``) in method specs.
PEFT_PREFIX = "peft:"


def adapter_path(spec: str | Path) -> Path:
    """The folder of an adapter spec (``DIR`` or ``peft:DIR``)."""
    text = str(spec)
    return Path(text[len(PEFT_PREFIX):] if text.startswith(PEFT_PREFIX) else text)


def normalize_adapter(spec: str | Path) -> str:
    """``spec`` with its folder absolute and resolved, the ``peft:`` prefix kept."""
    prefix = PEFT_PREFIX if str(spec).startswith(PEFT_PREFIX) else ""
    return prefix + str(adapter_path(spec).expanduser().resolve())


def _is_peft(spec: str | Path) -> bool:
    if str(spec).startswith(PEFT_PREFIX):
        return True
    from analog_peft.methods.errors import AdapterFileError
    from analog_peft.methods.io import read_config

    try:
        return "peft_type" in read_config(adapter_path(spec))[0]
    except AdapterFileError:  # unreadable: the regular loader names the problem
        return False


def adapter_pooling(spec: str | Path | None) -> str:
    """The head pooling an adapter was trained with (``auto`` for no adapter; ``native`` when unrecorded)."""
    import json

    from analog_peft.heads import UNRECORDED, recorded_pooling

    if spec is None:
        return "auto"
    folder = adapter_path(spec)
    for name in ("analog_peft_base.json", "adapter_config.json"):  # the PEFT sidecar first, then ours
        path = folder / name
        try:
            data = json.loads(path.read_text()) if path.is_file() else None
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            continue  # the adapter loader names the problem
        if isinstance(data, dict) and isinstance(data.get("fingerprint"), dict):
            return recorded_pooling(data["fingerprint"])
    return UNRECORDED



def _restore_calibration(model: nn.Module, adapter_dir: str | Path | None) -> None:
    """Input ranges calibrated at training time (``standard`` preset), when the adapter sits in a run directory."""
    from analog_peft.calibration import load_calibration, run_dir_of

    run = run_dir_of(adapter_path(adapter_dir)) if adapter_dir is not None else None
    if run is not None:
        load_calibration(model, run)


def _load_base(base_model: str, adapter_dir: str | Path | None, num_labels: int, head_seed: int,
               causal: bool) -> nn.Module:
    """The digital base: a causal LM, or a classifier whose head pools as the adapter records."""
    if causal:
        from analog_peft.models import load_causal_lm

        return load_causal_lm(base_model)
    return load_classifier(base_model, num_labels=num_labels, seed=head_seed, pooling=adapter_pooling(adapter_dir))


def _check_base(base_model: str, adapter_dir: str | Path | None, recorded: ConversionConfig | None) -> None:
    """Refuse, in one line, an adapter whose record names another base model than ``base_model``."""
    from analog_peft.methods.errors import AdapterFileError
    from analog_peft.models import ModelNotFoundError, canonical_name

    if adapter_dir is None or recorded is None or not recorded.base_model:
        return
    try:
        trained_on = canonical_name(recorded.base_model)
    except ModelNotFoundError:  # recorded on another machine: the fingerprint check still applies
        return
    if canonical_name(base_model) != trained_on:
        raise AdapterFileError(f"adapter {adapter_path(adapter_dir)} was trained on base {recorded.base_model!r}, this "
                               f"model is {base_model!r}: pass --base {recorded.base_model} "
                               f"(base_model={recorded.base_model!r})")


@dataclass
class Deployment:
    """A converted model ready to be programmed as chips, with what it was built from."""

    name: str
    model: nn.Module
    report: ConversionReport
    deployment: str
    adapter_dir: str | None
    #: the conversion used (the adapter's record unless overridden) and whether it overrides the record
    conversion: ConversionConfig | None = None
    overridden: bool = False


def deploy(
    base_model: str,
    adapter_dir: str | Path | None,
    deployment: str = "periphery",
    rpu: str | dict[str, Any] | None = None,
    num_labels: int = 2,
    name: str | None = None,
    head_seed: int = 0,
    causal: bool = False,
    allow_override: bool = False,
) -> Deployment:
    """Build the analog model of one method (``adapter_dir=None``: the bare base with its seeded head).

    The head pools as the adapter records (:func:`adapter_pooling`), so the trained model is rebuilt exactly.
    ``causal=True`` builds a causal language model instead (generation, perplexity; ``num_labels`` unused):
    its LM head stays digital (``convert``'s ``blocks`` selection; a tied head is never converted).

    The conversion is the adapter's record (``conversion.json``: preset, modules, exclusions); ``rpu=None`` takes
    its preset (``mapped`` when none is recorded), another preset raises unless ``allow_override``.
    """
    if deployment not in DEPLOYMENTS:
        raise ValueError(f"unknown deployment {deployment!r}; choose one of {DEPLOYMENTS}")
    recorded = load_conversion(adapter_path(adapter_dir)) if adapter_dir is not None else None
    _check_base(base_model, adapter_dir, recorded)
    where = f"adapter {adapter_path(adapter_dir)}" if adapter_dir is not None else "the base"
    rpu, overridden = resolve_rpu_choice(rpu, recorded, "mapped", where, allow_override)
    selection = {"modules": recorded.modules, "exclude": recorded.exclude} if recorded is not None else {}

    def convert(model: nn.Module, rpu: Any) -> ConversionReport:
        return convert_model(model, rpu, **selection)

    model = _load_base(base_model, adapter_dir, num_labels, head_seed, causal)
    if adapter_dir is not None and _is_peft(adapter_dir):
        from analog_peft.peft_bridge.adapter import load_peft

        report = convert(model, rpu)
        adapted = load_peft(model, adapter_path(adapter_dir), trainable=False)
        model = adapted.merge() if deployment == "fused" else adapted
    elif deployment == "fused" and adapter_dir is not None:
        adapted = load_adapter(model, adapter_dir)
        model = adapted.merge()
        report = convert(model, rpu)
    else:
        report = convert(model, rpu)
        if adapter_dir is not None:
            model = load_adapter(model, adapter_dir)
    _restore_calibration(model, adapter_dir)
    model.eval()
    label = name or (Path(adapter_dir).name if adapter_dir is not None else "base")
    used = ConversionConfig(rpu_dict(rpu), **selection)
    return Deployment(label, model, report, deployment, None if adapter_dir is None else str(adapter_dir), used,
                      overridden)
