"""Identify the whole Meyer compaction law when the line load has been moved across its range.

ε = ε_min + (ε₀ − ε_min)·exp(−q_L/γ_c), γ_c = γ_ref·exp(−β(T − T_ref)). Data at one line load pin down
only γ_c for an assumed ε₀ and ε_min; a calender trial that steps the line load from light to heavy
pressing shows both ends of the curve, so ε₀, ε_min and γ_ref become identifiable together. They are fitted
by bounded nonlinear least squares (scipy's trust-region reflective solver, analytic Jacobian) with the
covariance s²·(JᵀJ)⁻¹, and count as identified only when the fit is this precise: σ(ε₀), σ(ε_min) ≤
``MAX_POROSITY_SIGMA``, no bound active. β joins the fit when the roll temperature moved too; otherwise it
keeps the value and uncertainty it is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

MIN_LOAD_SPAN = 300.0  # N/mm the line load must span, or no fit is tried
MIN_TEMPERATURE_SPAN = 5.0  # Cel the roll temperature must span for β to be fitted
SPAN_TRIM = 30  # samples left out at each end of a span: a spike is no sweep, a trial step is longer
MAX_POROSITY_SIGMA = 0.01  # porosity fraction: the precision at which ε₀ and ε_min count as identified
# (ε_min, ε₀ − ε_min, ln γ_ref, β): physically plausible ranges, wider than DOMAIN.md's
LOWER = (0.0, 0.01, math.log(10.0), -0.1)
UPPER = (0.6, 0.9, math.log(1e5), 0.1)


@dataclass(frozen=True)
class CompactionFit:
    """The law's parameters and their covariance, ordered (ε₀, ε_min, ln γ_ref, β)."""

    eps_0: float
    eps_min: float
    log_gamma_ref: float
    beta: float
    covariance: np.ndarray

    @property
    def sigmas(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    def state(self) -> dict[str, Any]:
        return {
            "eps_0": self.eps_0,
            "eps_min": self.eps_min,
            "log_gamma_ref": self.log_gamma_ref,
            "beta": self.beta,
            "covariance": self.covariance.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CompactionFit:
        return cls(
            state["eps_0"],
            state["eps_min"],
            state["log_gamma_ref"],
            state["beta"],
            np.asarray(state["covariance"], dtype=float),
        )


def span(values: np.ndarray) -> float:
    """Range of ``values`` without the ``SPAN_TRIM`` most extreme at each end."""
    ordered = np.sort(values)
    return float(ordered[-SPAN_TRIM - 1] - ordered[SPAN_TRIM]) if ordered.size > 2 * SPAN_TRIM else 0.0


def identify(
    load: Any, temperature: Any, porosity: Any, t_ref: float, beta: float, beta_sigma: float
) -> tuple[CompactionFit | None, str]:
    """The law fitted to (q_L N/mm, T Cel, ε fraction) samples if they identify it, and why or why not."""
    q, t, eps = (np.asarray(v, dtype=float) for v in (load, temperature, porosity))
    keep = np.isfinite(q) & np.isfinite(t) & np.isfinite(eps) & (q >= 0)
    q, dt, eps = q[keep], t[keep] - t_ref, eps[keep]
    if q.size < 50:
        return None, f"prior: {q.size} samples"
    load_span = span(q)
    if load_span < MIN_LOAD_SPAN:
        return None, f"prior: line load spans {load_span:.0f} N/mm (< {MIN_LOAD_SPAN:.0f} for ε₀, ε_min)"
    fit_beta = span(dt) >= MIN_TEMPERATURE_SPAN
    n = 4 if fit_beta else 3

    def parts(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = p[3] if fit_beta else beta
        ratio = q / np.exp(p[2] - b * dt)
        return np.exp(-ratio), ratio

    def residuals(p: np.ndarray) -> np.ndarray:
        decay, _ = parts(p)
        return p[0] + p[1] * decay - eps

    def jacobian(p: np.ndarray) -> np.ndarray:
        decay, ratio = parts(p)
        slope = p[1] * decay * ratio  # dε/d ln γ_c
        columns = [np.ones_like(q), decay, slope, -slope * dt][:n]
        return np.column_stack(columns)

    start = np.array([max(eps.min() - 0.01, 0.0), eps.max() - eps.min() + 0.02, math.log(np.median(q)), beta])
    bounds = (LOWER[:n], UPPER[:n])
    result = optimize.least_squares(
        residuals, np.clip(start[:n], LOWER[:n], UPPER[:n]), jac=jacobian, bounds=bounds, method="trf"
    )
    j = result.jac
    dof = max(q.size - n, 1)
    try:
        inner = np.linalg.inv(j.T @ j) * float(result.fun @ result.fun) / dof
    except np.linalg.LinAlgError:
        return None, "prior: the line loads seen do not separate ε₀ from ε_min"
    # (ε_min, Δ, ln γ, β) → (ε₀ = ε_min + Δ, ε_min, ln γ, β)
    transform = np.array([[1.0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])[:, :n]
    covariance = transform @ inner @ transform.T
    if not fit_beta:
        covariance[3, 3] = beta_sigma**2
    p = result.x
    fit = CompactionFit(
        float(p[0] + p[1]), float(p[0]), float(p[2]), float(p[3]) if fit_beta else beta, covariance
    )
    sigma_0, sigma_min = fit.sigmas[:2]
    if not result.success or np.any(result.active_mask != 0) or max(sigma_0, sigma_min) > MAX_POROSITY_SIGMA:
        return None, f"prior: line loads {q.min():.0f}–{q.max():.0f} N/mm leave σ(ε₀) = {sigma_0:.3f}, " + (
            f"σ(ε_min) = {sigma_min:.3f}"
        )
    return fit, f"identified from line loads {q.min():.0f}–{q.max():.0f} N/mm ({q.size} samples)"


def anchored(
    load: Any,
    temperature: Any,
    porosity: Any,
    t_ref: float,
    priors: tuple[float, float, float],
    beta: float,
    beta_sigma: float,
) -> CompactionFit | None:
    """The law through the calibration's operating point, with ε₀ and ε_min (σ ``priors[2]``) and β as priors.

    At one line load the data fix ε at that load and nothing else: γ_c is whatever puts the curve through
    that point for the assumed ε₀ and ε_min. So γ_ref is a function of the priors, ln γ_ref = ln(q₀ / ln((ε₀
    − ε_min)/(ε̄ − ε_min))) + β(T̄ − T_ref), and its covariance carries their uncertainty through that
    function: a prediction at the calibrated load is as precise as the data, one away from it is as
    uncertain as ε₀, ε_min and β are. That is where an honest extrapolation interval comes from.
    """
    q, t, eps = (np.asarray(v, dtype=float) for v in (load, temperature, porosity))
    keep = np.isfinite(q) & np.isfinite(t) & np.isfinite(eps) & (q > 0)
    q, t, eps = q[keep], t[keep], eps[keep]
    eps_0, eps_min, prior_sigma = priors
    if q.size < 10:
        return None
    q0, t0, e0 = float(q.mean()), float(t.mean()), float(eps.mean())
    if not eps_min < e0 < eps_0:
        return None
    a, b = eps_0 - eps_min, e0 - eps_min
    spread = math.log(a / b)
    log_gamma_ref = math.log(q0 / spread) + beta * (t0 - t_ref)
    inside = (eps > eps_min) & (eps < eps_0)
    per_sample = np.log(q[inside] / np.log(a / (eps[inside] - eps_min)))
    data_var = float(per_sample.var(ddof=1) / per_sample.size) if per_sample.size > 1 else 0.0
    # ln γ_ref = g(ε₀, ε_min, β) + data error: covariance M·diag(priors, data, β)·Mᵀ
    mix = np.eye(4)
    mix[2] = [-1 / (spread * a), (1 / a - 1 / b) / spread, 1.0, t0 - t_ref]
    covariance = mix @ np.diag([prior_sigma**2, prior_sigma**2, data_var, beta_sigma**2]) @ mix.T
    return CompactionFit(eps_0, eps_min, log_gamma_ref, beta, covariance)
