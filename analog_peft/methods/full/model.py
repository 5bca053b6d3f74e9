"""Full fine-tuning "adapter": the trained tensors are all the base model's parameters."""

from __future__ import annotations

from torch import nn

from analog_peft.methods.full.config import FullConfig
from analog_peft.methods.model import AdaptedModel, _is_weight


class FullModel(AdaptedModel):
    config_class = FullConfig
    mergeable = True  # the weights already are the model's

    def base_parameters_to_train(self) -> dict[str, nn.Parameter]:
        heads = tuple(h + "." for h in self._heads)
        seen, out = set(), {}
        for name, p in self.model.named_parameters():  # named_parameters skips tied duplicates
            if _is_weight(name) and not name.startswith(heads) and id(p) not in seen:
                seen.add(id(p))
                out[name] = p
        return out
