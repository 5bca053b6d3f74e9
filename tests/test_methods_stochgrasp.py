"""StochGRASP: sampling statistics, the noise-aware KL pull, σ_target derivation from device models."""

from __future__ import annotations

import pytest
import torch
from test_methods_helpers import fresh, load_minilm, sst2_batch

from analog_peft.methods import AdapterError, StochGraspConfig, attach, merge_adapter
from analog_peft.methods.stochgrasp.layer import inverse_softplus
from analog_peft.objectives import spread_kl

LAST_BLOCK = ["re:.*layer\\.5\\.(attention\\.self\\.(query|value)|intermediate\\.dense|output\\.dense)"]


@pytest.fixture(scope="module")
def base():
    return load_minilm()


@pytest.fixture(scope="module")
def batch():
    return sst2_batch(8, offset=100)


def inputs(batch):
    return {k: v for k, v in batch.items() if k != "labels"}


def _train(adapted, batch, steps: int, lr: float = 1e-2) -> None:
    opt = torch.optim.Adam(adapted.param_groups(lr))
    adapted.train()
    torch.manual_seed(0)
    for _ in range(steps):
        loss = adapted(**batch).loss + adapted.regularization_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()


def _spreads(adapted):
    s = adapted.spreads()
    return torch.cat([g for g, _ in s.values()]), torch.cat([b for _, b in s.values()])


def test_kl_form():
    sigma = torch.tensor([0.05, 0.1, 0.2], requires_grad=True)
    kl = spread_kl(sigma, torch.full((3,), 0.1))
    assert kl[1].item() == pytest.approx(0.0, abs=1e-7) and kl[0] > 0 and kl[2] > 0
    kl.sum().backward()
    assert sigma.grad[0] < 0 and sigma.grad[2] > 0  # descent moves σ toward σ_target


def test_sampling_statistics_and_modes(base):
    adapted = attach(fresh(base), StochGraspConfig(k=8, target_modules=LAST_BLOCK, sigma_init=0.05))
    layer = next(iter(adapted.adapter_layers().values()))
    with torch.no_grad():
        layer.gamma.copy_(torch.linspace(0.5, 1.5, 8))
        layer.beta.copy_(torch.linspace(-0.2, 0.2, 8))
        layer.rho_gamma.copy_(torch.tensor([inverse_softplus(s) for s in torch.linspace(0.01, 0.3, 8).tolist()]))
    adapted.train()
    torch.manual_seed(1)
    draws = [layer.modulation() for _ in range(4000)]
    gammas = torch.stack([g for g, _ in draws]).detach()
    betas = torch.stack([b for _, b in draws]).detach()
    assert torch.allclose(gammas.mean(0), layer.gamma.detach(), atol=0.02)
    assert torch.allclose(gammas.std(0), layer.sigma_gamma.detach(), rtol=0.06)
    assert torch.allclose(betas.std(0), layer.sigma_beta.detach(), rtol=0.06)
    # one ε per group per forward: the same group gets the same value in every position
    g, _ = layer.modulation()
    assert g.shape == (8,)
    adapted.eval()
    assert torch.equal(layer.modulation()[0], layer.gamma)  # eval: means
    adapted.set_sampling(True)
    assert not torch.equal(layer.modulation()[0], layer.gamma)
    adapted.set_sampling(None)
    adapted.sample_for_chip(7)
    first = layer.modulation()[0].clone()
    adapted.sample_for_chip(8)
    assert not torch.equal(layer.modulation()[0], first)
    adapted.sample_for_chip(7)
    assert torch.equal(layer.modulation()[0], first)
    adapted.sample_for_chip(None)
    assert torch.equal(layer.modulation()[0], layer.gamma)


@pytest.mark.parametrize("form", ["gaussian_inverse", "lognormal"])
def test_gamma_forms_sample_their_law(base, batch, form):
    """Each form draws its own law with relative spread σ, keeps γ's sign, and a chip sample still merges."""
    adapted = attach(fresh(base), StochGraspConfig(k=8, target_modules=LAST_BLOCK, gamma_form=form))
    layer = next(iter(adapted.adapter_layers().values()))
    mean = torch.linspace(0.5, 1.5, 8)
    sigma = torch.linspace(0.05, 0.6, 8)
    with torch.no_grad():
        layer.gamma.copy_(mean)
        layer.rho_gamma.copy_(torch.tensor([inverse_softplus(v) for v in sigma.tolist()]))
    adapted.train()
    torch.manual_seed(2)
    gammas = torch.stack([layer.modulation()[0] for _ in range(4000)]).detach()
    if form == "lognormal":
        assert (gammas > 0).all()  # the sign of the mean is kept
    z = (mean / gammas - 1) if form == "gaussian_inverse" else (gammas / mean).log()
    assert torch.allclose(z.mean(0), torch.zeros(8), atol=0.03)
    assert torch.allclose(z.std(0), sigma, rtol=0.06)
    if form == "gaussian_inverse":  # the input gain 1/γ is bounded by the Gaussian multiplier, not by gamma_eps
        assert (1 / gammas).abs().max() < (1 + 5 * sigma.max()) / mean.min()
    loss = adapted(**batch).loss
    loss.backward()
    assert layer.rho_gamma.grad is not None and layer.rho_gamma.grad.abs().sum() > 0
    adapted.eval()
    assert torch.equal(layer.modulation()[0], layer.gamma)  # deployed at the means in every form
    adapted.sample_for_chip(3)
    with torch.no_grad():
        ref = adapted(**inputs(batch)).logits
        out = merge_adapter(adapted)(**inputs(batch)).logits
    assert (out - ref).abs().max() <= 1e-4


def test_gamma_form_is_checked():
    with pytest.raises(AdapterError, match="gamma_form must be one of"):
        StochGraspConfig(k=4, gamma_form="uniform").validate()


def test_chip_sample_merges(base, batch):
    adapted = attach(fresh(base), StochGraspConfig(k=8, target_modules=LAST_BLOCK, sigma_init=0.2)).eval()
    adapted.sample_for_chip(3)
    with torch.no_grad():
        ref = adapted(**inputs(batch)).logits
        out = merge_adapter(adapted)(**inputs(batch)).logits
    assert (out - ref).abs().max() <= 1e-4


def test_param_groups_give_rho_its_own_lr(base):
    adapted = attach(fresh(base), StochGraspConfig(k=4, target_modules=LAST_BLOCK, sigma_lr_scale=25.0))
    groups = adapted.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 2.5e-2]
    assert len(groups[1]["params"]) == 2 * 4  # ρ_γ, ρ_β of 4 layers
    n = sum(p.numel() for g in groups for p in g["params"])
    assert n == adapted.trainable_summary()["trainable"]


def test_kl_pulls_spreads_toward_target(base, batch):
    cfg = StochGraspConfig(k=8, target_modules=LAST_BLOCK, sigma_init=0.01, sigma_target=0.1, lam=1.0,
                           sigma_lr_scale=30.0)
    adapted = attach(fresh(base), cfg)
    _train(adapted, batch, 1, lr=0.0)  # records the input RMS
    targets = adapted.sigma_targets()
    t_gamma = torch.cat([g for g, _ in targets.values()])
    t_beta = torch.cat([b for _, b in targets.values()])
    assert torch.allclose(t_gamma, torch.full_like(t_gamma, 0.1))
    g0, b0 = _spreads(adapted)
    _train(adapted, batch, 10)
    g1, b1 = _spreads(adapted)
    assert torch.all((g1 - t_gamma).abs() < 0.7 * (g0 - t_gamma).abs())
    assert (b1 - t_beta).abs().mean() < 0.7 * (b0 - t_beta).abs().mean()


class _Regressor(torch.nn.Module):
    """A digital linear layer trained to keep its own outputs: any spread in γ/β only adds loss."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(32, 16)

    def forward(self, x):
        return self.proj(x)


def _toy_spreads(lam: float, steps: int = 300) -> tuple[torch.Tensor, torch.Tensor]:
    model = _Regressor()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=gen)
    with torch.no_grad():
        y = model(x)
    cfg = StochGraspConfig(k=8, target_modules=["proj"], sigma_init=0.2, lam=lam, sigma_target=0.1,
                           beta_scale="absolute", sigma_lr_scale=1.0)
    adapted = attach(model, cfg)
    opt = torch.optim.Adam(adapted.param_groups(0.02))
    adapted.train()
    torch.manual_seed(1)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(adapted(x), y) + adapted.regularization_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return _spreads(adapted)


def test_without_kl_spreads_shrink_with_kl_they_hold():
    g0, b0 = _toy_spreads(lam=0.0)
    assert g0.max() < 0.1 and b0.max() < 0.1  # from 0.2: the task loss alone collapses the spreads
    g1, b1 = _toy_spreads(lam=0.05)
    assert (g1 - 0.1).abs().max() < 0.03 and (b1 - 0.1).abs().max() < 0.03  # the KL keeps them near σ_target


def test_sigma_target_from_gaussian_device(base, batch):
    """weight_spread: σ_γ,k = η·max|W| / rms(W[:, G_k]); σ_β,k = σ_γ,k · rms(x[G_k]) (inputs of the layer)."""
    eta = 0.02
    target = {"device_model": {"name": "gaussian", "params": {"eta": eta}}, "t": 86400.0, "mode": "weight_spread"}
    cfg = StochGraspConfig(k=4, target_modules=["re:.*layer\\.5\\.output\\.dense"], sigma_target=target,
                           drift_compensation=False)
    adapted = attach(fresh(base), cfg)
    with pytest.raises(AdapterError, match="not derived yet"):
        adapted.regularization_loss()
    name, layer = next(iter(adapted.adapter_layers().items()))
    seen = []
    handle = layer.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    adapted.calibrate(**inputs(batch))
    handle.remove()
    t_gamma, t_beta = adapted.sigma_targets()[name]
    w = layer.base_layer.weight.detach().double()
    x = seen[0].reshape(-1, w.shape[1]).double()
    for k in range(4):
        cols = layer.group_index == k
        expected = eta * w.abs().max() / w[:, cols].pow(2).mean().sqrt()
        assert t_gamma[k].item() == pytest.approx(expected.item(), rel=0.03)
        rms = x[:, cols].pow(2).mean().sqrt()
        assert t_beta[k].item() == pytest.approx((t_gamma[k] * rms).item(), rel=1e-4)
    assert adapted.regularization_loss().item() > 0


def test_sigma_target_group_scale_is_the_shared_scale_error(base, batch):
    """group_scale, i.i.d. errors of std s = η·max|W|: δ_k = ⟨E, W_G⟩/‖W_G‖² has std s/‖W_G‖ (Frobenius)."""
    eta = 0.02
    target = {"device_model": {"name": "gaussian", "eta": eta}, "t": 1.0, "mode": "group_scale"}
    cfg = StochGraspConfig(k=4, target_modules=["re:.*layer\\.5\\.output\\.dense"], sigma_target=target,
                           drift_compensation=False, n_draws=400)
    adapted = attach(fresh(base), cfg)
    adapted.calibrate(**inputs(batch))
    name, layer = next(iter(adapted.adapter_layers().items()))
    t_gamma = adapted.sigma_targets()[name][0]
    w = layer.base_layer.weight.detach().double()
    for k in range(4):
        cols = layer.group_index == k
        expected = eta * w.abs().max() / w[:, cols].norm()
        assert t_gamma[k].item() == pytest.approx(expected.item(), rel=0.12)  # RMS of 400 draws: ±3.5 % (1σ)
    # far below the per-weight spread the same device gives (what "weight_spread" targets)
    assert t_gamma.max() < 0.05 * eta * w.abs().max() / w.pow(2).mean().sqrt()


def test_sigma_target_output_error_scales_with_noise(base, batch):
    def targets(eta):
        spec = {"device_model": {"name": "gaussian", "params": {"eta": eta}}, "t": 1.0, "mode": "output_error"}
        cfg = StochGraspConfig(k=4, target_modules=["re:.*layer\\.5\\.intermediate\\.dense"], sigma_target=spec,
                               drift_compensation=False)
        adapted = attach(fresh(base), cfg)
        adapted.calibrate(**inputs(batch))
        return next(iter(adapted.sigma_targets().values()))[0]

    small, large = targets(0.01), targets(0.03)
    assert torch.all(small > 0)
    assert torch.allclose(large, 3 * small, rtol=1e-4)


def test_sigma_target_bad_specs():
    with pytest.raises(AdapterError, match="positive float"):
        StochGraspConfig(sigma_target=-1.0)
    with pytest.raises(AdapterError, match="mode must be one of"):
        StochGraspConfig(sigma_target={"device_model": "pcm", "t": 1.0, "mode": "typo"})
    with pytest.raises(AdapterError, match="unknown device model 'nope'"):
        attach(load_minilm(), StochGraspConfig(k=4, sigma_target={"device_model": "nope", "t": 1.0}))


def test_device_reads_use_the_chips_drift_compensation() -> None:
    """σ targets see the chips' error: the compensated read keeps mean|W_prog| (α = mean|W_prog| / mean|W_t|),
    the definition of ``analog_peft.chips.drift_compensation``, not a least-squares fit to the target."""
    import device_models as dm
    from analog_peft.chips import mean_abs_weight
    from analog_peft.methods.stochgrasp.sigma_target import device_reads

    w = 0.05 * torch.randn(64, 96, generator=torch.Generator().manual_seed(3))
    pcm = dm.get("pcm")
    (err,) = device_reads(w, pcm, 86400.0 * 365, dm.make_generator(5), 1, compensate=True)
    state = pcm.program(w, dm.make_generator(5))
    w_prog = pcm.programmed_weights(state)
    got = mean_abs_weight((w + err).float())
    assert got == pytest.approx(mean_abs_weight(w_prog), rel=1e-6)
    (raw,) = device_reads(w, pcm, 86400.0 * 365, dm.make_generator(5), 1, compensate=False)
    assert mean_abs_weight((w + raw).float()) < 0.9 * got  # a year of PCM drift shrinks |W| by > 10 %
