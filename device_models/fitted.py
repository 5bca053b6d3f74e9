"""Fit a PCM-like device model to your own measurements (scipy), usable like any preset.

>>> model = fit_pcm_like(g_target, g_programmed, nu=nu, g_max=25.0)   # doctest: +SKIP
>>> device_models.get(model.to_dict())                                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from device_models.base import DeviceModelError
from device_models.pcm import PCM
from device_models.registry import register

#: ``(slope, intercept, lo, hi)`` of ``clamp(slope · ln(g/g_max) + intercept, lo, hi)``.
LogLaw = tuple[float, float, float, float]


@register
@dataclass
class FittedPCM(PCM):
    """A PCM-like model whose programming-noise polynomial and drift-exponent laws were fitted by
    :func:`fit_pcm_like` to user measurements. Same physics as ``pcm`` (Nandakumar et al., ICECS 2019,
    as IBM aihwkit's ``PCMLikeNoiseModel``); ``prog_coeff`` is in µS at ``prog_coeff_g_max_reference``.
    Quantities not fitted (drift law when no ν was given, 1/f read noise) keep the ``pcm`` values.
    """

    name = "fitted_pcm"
    reference = "fitted with device_models.fit_pcm_like; physics of Nandakumar et al., ICECS 2019"


def _array(name: str, values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    arr = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(arr)):
        raise DeviceModelError(f"fit_pcm_like: {name} contains NaN or infinite values; drop those devices")
    if np.any(arr < 0):
        raise DeviceModelError(
            f"fit_pcm_like: {name} has negative values (min {arr.min():.4g}); conductances (µS) and drift "
            "exponents must be >= 0 — pass magnitudes of single devices, not differential weights"
        )
    return arr


def _quantile_bins(x: np.ndarray, n_bins: int) -> list[np.ndarray]:
    order = np.argsort(x, kind="stable")
    return [idx for idx in np.array_split(order, n_bins) if idx.size > 1]


def _clipped_line(x: np.ndarray, slope: float, intercept: float, lo: float, hi: float) -> np.ndarray:
    return np.clip(slope * x + intercept, min(lo, hi), max(lo, hi))


def fit_prog_coeff(
    g_target: np.ndarray, g_programmed: np.ndarray, g_max: float, degree: int, n_bins: int
) -> tuple[float, ...]:
    """Programming-noise std polynomial (µS, ascending powers of ``g/g_max``) by maximum likelihood.

    Starts from ``numpy.polyfit`` of binned standard deviations, then maximises the Gaussian likelihood of
    ``g_programmed - g_target`` with ``scipy.optimize.minimize``, treating devices read at 0 µS as
    censored (the model clamps programmed conductances at 0).
    """
    x = g_target / g_max
    resid = g_programmed - g_target
    bins = _quantile_bins(x, n_bins)
    centres = np.array([x[b].mean() for b in bins])
    stds = np.array([resid[b].std(ddof=1) for b in bins])
    start = np.polyfit(centres, stds, degree, w=np.sqrt([b.size for b in bins]))[::-1]
    censored = g_programmed <= 0

    def neg_log_likelihood(coeff: np.ndarray) -> float:
        sigma = np.maximum(np.abs(np.polynomial.polynomial.polyval(x, coeff)), 1e-9)
        ll = stats.norm.logpdf(resid[~censored], scale=sigma[~censored]).sum()
        ll += stats.norm.logcdf(-g_target[censored] / sigma[censored]).sum()
        return -float(ll)

    result = optimize.minimize(neg_log_likelihood, start, method="Nelder-Mead", options={"maxiter": 4000})
    return tuple(float(c) for c in (result.x if result.fun <= neg_log_likelihood(start) else start))


def _fit_clipped_line(x: np.ndarray, y: np.ndarray) -> LogLaw:
    slope, intercept = np.polyfit(x, y, 1)
    p0 = [slope, intercept, y.min(), y.max()]
    try:
        params, _ = optimize.curve_fit(_clipped_line, x, y, p0=p0, maxfev=20000)
    except RuntimeError:  # no convergence: keep the straight line clipped to the observed range
        params = p0
    slope, intercept, lo, hi = (float(p) for p in params)
    return slope, intercept, min(lo, hi), max(lo, hi)


def fit_drift_law(g_rel: np.ndarray, nu: np.ndarray, n_bins: int) -> tuple[LogLaw, LogLaw]:
    """Mean and std laws ``(slope, intercept, lo, hi)`` of ν, i.e. ``clamp(slope · ln(g_rel) + intercept,
    lo, hi)``, fitted with ``scipy.optimize.curve_fit`` to equal-count bins in ``ln(g_rel)``."""
    log_g = np.log(np.clip(g_rel, 1e-7, None))
    bins = _quantile_bins(log_g, n_bins)
    centres = np.array([log_g[b].mean() for b in bins])
    means = np.array([nu[b].mean() for b in bins])
    stds = np.array([nu[b].std(ddof=1) for b in bins])
    return _fit_clipped_line(centres, means), _fit_clipped_line(centres, stds)


def fit_pcm_like(
    g_target: Any,
    g_programmed: Any,
    nu: Any | None = None,
    *,
    g_max: float | None = None,
    degree: int = 2,
    n_bins: int = 20,
    **params: Any,
) -> FittedPCM:
    """Fit a PCM-like model (``FittedPCM``, registered as ``"fitted_pcm"``) to device measurements.

    Args:
        g_target: target conductances (µS, >= 0) of single devices, any shape.
        g_programmed: measured conductances right after programming, same shape.
        nu: optional measured drift exponents ν of the same devices (e.g. from ``g(t) = g(t0)(t/t0)^-ν``);
            their binned mean and std are fitted with the ``pcm`` law ``clamp(a ln(g/g_max) + b, lo, hi)``.
            Without ``nu`` the ``pcm`` drift law is kept.
        g_max: conductance the tile's max|W| will map to (µS); defaults to ``max(g_target)``.
        degree: degree of the programming-noise polynomial in ``g/g_max``.
        n_bins: number of equal-count bins for the initial/binned fits.
        **params: further ``FittedPCM`` parameters (``t0``, ``t_read``, ``read_noise_scale``, ...).

    Returns:
        The fitted model; ``model.to_dict()`` round-trips through ``device_models.get``.
    """
    g_t, g_p = _array("g_target", g_target), _array("g_programmed", g_programmed)
    if g_t.shape != g_p.shape:
        raise DeviceModelError(f"fit_pcm_like: g_target {g_t.shape} and g_programmed {g_p.shape} differ in shape")
    if degree < 0 or n_bins < 2:
        raise DeviceModelError(f"fit_pcm_like: need degree >= 0 and n_bins >= 2, got {degree}, {n_bins}")
    nu_arr = None if nu is None else _array("nu", nu)
    if nu_arr is not None and nu_arr.shape != g_t.shape:
        raise DeviceModelError(f"fit_pcm_like: nu {nu_arr.shape} must have g_target's shape {g_t.shape}")
    g_t, g_p = g_t.ravel(), g_p.ravel()
    min_points = max(10 * n_bins, 20 * (degree + 1))
    if g_t.size < min_points:
        raise DeviceModelError(
            f"fit_pcm_like: {g_t.size} devices is too few for degree={degree}, n_bins={n_bins}; "
            f"measure at least {min_points} devices or lower n_bins/degree"
        )
    g_max = float(g_t.max()) if g_max is None else float(g_max)
    if not g_max > 0:
        raise DeviceModelError(f"fit_pcm_like: g_max must be > 0 µS, got {g_max}")

    fitted: dict[str, Any] = {
        "g_max": g_max,
        "prog_coeff": fit_prog_coeff(g_t, g_p, g_max, degree, n_bins),
        "prog_coeff_g_max_reference": g_max,
    }
    if nu_arr is not None:
        fitted["nu_mean"], fitted["nu_std"] = fit_drift_law(g_t / g_max, nu_arr.ravel(), n_bins)
    unknown = set(params) - set(FittedPCM.param_names())
    if unknown:
        raise DeviceModelError(f"fit_pcm_like: unknown parameter(s) {sorted(unknown)}; see FittedPCM fields")
    return FittedPCM(**{**params, **fitted})
