"""Deriving StochGRASP's relative target spreads from a device model (see :class:`StochGraspConfig`)."""

from __future__ import annotations

import torch
from torch import Tensor

from analog_peft.chips import drift_compensation, mean_abs_weight
from device_models import Workspace


def group_sums(values: Tensor, group_index: Tensor, k: int) -> Tensor:
    """Sum a ``[D]`` tensor into ``[K]`` groups."""
    return torch.zeros(k, dtype=values.dtype, device=values.device).index_add_(0, group_index, values)


def device_reads(weight: Tensor, device_model, t: float, generator, n_draws: int, compensate: bool) -> list[Tensor]:
    """``n_draws`` errors ``ΔW = α·W_t − W`` of independently programmed copies of ``weight``, with the
    chips' global drift compensation ``α = mean|W_prog| / mean|W_t|`` (:func:`analog_peft.chips.drift_compensation`)."""
    errors = []
    work = Workspace()
    for _ in range(n_draws):
        state = device_model.program(weight, generator)
        w_t = device_model.read(state, t, generator).to(torch.float32)
        if compensate:
            w_prog = torch.empty_like(w_t)
            device_model.programmed_into(state, w_prog, work)
            w_t = w_t * drift_compensation(mean_abs_weight(w_prog, work), w_t, work)
        errors.append(w_t.to(weight) - weight)
    return errors


@torch.no_grad()
def weight_spread(weight: Tensor, errors: list[Tensor], group_index: Tensor, k: int) -> Tensor:
    """``σ_k = ‖ΔW[:, G_k]‖ / ‖W[:, G_k]‖`` (mean square over draws)."""
    err = torch.stack([e.pow(2).sum(0) for e in errors]).mean(0)
    ref = weight.pow(2).sum(0)
    return (group_sums(err, group_index, k) / group_sums(ref, group_index, k).clamp_min(1e-30)).sqrt()


@torch.no_grad()
def group_scale(weight: Tensor, errors: list[Tensor], group_index: Tensor, k: int) -> Tensor:
    """Std over draws (chips) of ``δ_k = ⟨ΔW[:, G_k], W[:, G_k]⟩ / ‖W[:, G_k]‖²``, the shared scale error of group k.

    ``δ_k`` is the least-squares fit of ``ΔW[:, G_k] ≈ δ_k · W[:, G_k]``: the part of the device error one scale
    ``1/γ_k`` on those columns can express. Its mean over chips is a deterministic bias (e.g. the shrink a
    least-squares drift compensation leaves), which the learned mean absorbs; its chip-to-chip spread is what
    the sampled γ should carry. Independent per-weight errors mostly average out of it. Needs >= 2 draws.
    """
    if len(errors) < 2:
        raise ValueError("group_scale needs n_draws >= 2 (it is a spread across programmed copies)")
    ref = group_sums(weight.pow(2).sum(0), group_index, k).clamp_min(1e-30)
    deltas = torch.stack([group_sums((e * weight).sum(0), group_index, k) / ref for e in errors])
    return deltas.std(0)


@torch.no_grad()
def output_error(weight: Tensor, errors: list[Tensor], x: Tensor, group_index: Tensor, k: int) -> Tensor:
    """``σ_k = ‖X_k ΔW[:, G_k]ᵀ‖ / ‖X_k W[:, G_k]ᵀ‖`` on calibration inputs ``X`` (``[N, D]``)."""
    out = torch.empty(k, dtype=weight.dtype)
    for g in range(k):
        cols = (group_index == g).nonzero().squeeze(1)
        xg = x[:, cols]
        ref = (xg @ weight[:, cols].t()).pow(2).sum()
        err = torch.stack([(xg @ e[:, cols].t()).pow(2).sum() for e in errors]).mean()
        out[g] = (err / ref.clamp_min(1e-30)).sqrt()
    return out
