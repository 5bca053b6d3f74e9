"""BitFit adapted model: the trained tensors are the base model's own biases."""

from __future__ import annotations

from torch import nn

from analog_peft.methods.bitfit.config import BitFitConfig
from analog_peft.methods.errors import AdapterError
from analog_peft.methods.model import AdaptedModel
from analog_peft.methods.modules import bias_parameter, is_linear_like


class BitFitModel(AdaptedModel):
    config_class = BitFitConfig
    mergeable = True  # the biases already are the model's

    def base_parameters_to_train(self) -> dict[str, nn.Parameter]:
        heads = tuple(h + "." for h in self._heads)
        if self.adapter_config.bias_scope == "all":
            found = {n: p for n, p in self.model.named_parameters() if n.split(".")[-1] == "bias"}
        else:
            found = {}
            for name, module in self.model.named_modules():
                bias = bias_parameter(module) if is_linear_like(module) else None
                if bias is not None:
                    found[f"{name}.bias"] = bias
        # an analog layer's digital bias is saved under the digital name, so adapters move between both
        found = {n.replace(".analog_module.bias", ".bias"): p for n, p in found.items() if not n.startswith(heads)}
        if not found:
            raise AdapterError(
                "bitfit: this model has no bias parameters to train (e.g. Llama has none); choose another method"
            )
        return found
