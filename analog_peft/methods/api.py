"""The verbs: ``attach``, ``load_adapter``, ``merge_adapter``."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from analog_peft.methods.config import AdapterConfig, config_from_dict
from analog_peft.methods.errors import AdapterFileError
from analog_peft.methods.io import assign_tensors, read_config, read_tensors, verify_tensors
from analog_peft.methods.model import _MODELS, AdaptedModel
from analog_peft.methods.targets import model_type


def attach(model: nn.Module, config: AdapterConfig) -> AdaptedModel:
    """Inject the adapter described by ``config`` into ``model`` (in place; digital or analog-converted).

    Returns the :class:`AdaptedModel`, an ``nn.Module`` forwarding to ``model``. Everything of the base is
    frozen except the adapter, the task head (``train_head``) and what the method trains itself.
    """
    if not isinstance(config, AdapterConfig):
        raise TypeError(f"attach() needs an AdapterConfig (e.g. GraspConfig()), got {type(config).__name__}")
    return _MODELS[config.method](model, config)


def load_adapter(model: nn.Module, directory: str | Path) -> AdaptedModel:
    """Attach the adapter saved in ``directory`` to a freshly loaded ``model`` and load its tensors.

    Raises :class:`AdapterFileError` naming the file when it is missing, corrupt (tensor checksum), holds
    non-finite tensors, is of an unknown method or field, or was made for a different base model (fingerprint
    of model type and target shapes, and its digest). A Hugging Face PEFT folder (``save_pretrained``) is
    loaded through :func:`analog_peft.peft_bridge.adapter.load_peft`.
    """
    data, config_path = read_config(directory)
    if "peft_type" in data and "method" not in data:
        from analog_peft.peft_bridge.adapter import load_peft

        return load_peft(model, directory)  # type: ignore[return-value]
    config = config_from_dict(data, source=config_path)
    saved = data.get("fingerprint")
    if not isinstance(saved, dict):
        raise AdapterFileError(f"{config_path} has no base-model fingerprint; re-save the adapter")
    if saved.get("model_type") != model_type(model):
        raise AdapterFileError(
            f"adapter {config_path} was made for model_type={saved.get('model_type')!r}, this model is "
            f"{model_type(model)!r}. Load it onto the base model it was trained for."
        )
    tensors, weights_path = read_tensors(directory)  # read and verify before touching the model
    verify_tensors(tensors, data, directory, nan_sentinels=_MODELS[config.method].nan_sentinels)
    adapted = _MODELS[config.method](model, config, expected_fingerprint=saved, source=str(config_path))
    assign_tensors(adapted.adapter_tensors(), tensors, weights_path)
    adapted.after_load()
    return adapted


def merge_adapter(adapted: AdaptedModel) -> nn.Module:
    """The base model with the adapter folded into its digital weights (GRASP, StochGRASP means, LoRA, (IA)^3).

    Merging into an analog layer raises: merge on the digital base, then convert.
    """
    return adapted.merge()
