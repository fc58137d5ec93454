"""Online calibration: recursive least squares with exponential forgetting and parameter covariance.

Hand-written (a dozen lines of numpy) because neither scikit-learn nor River gives the parameter
covariance of a streaming linear fit, and the twin must report every parameter with its uncertainty.
The noise variance is tracked from the a-posteriori residuals, so ``covariance = σ²·P``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class RecursiveLeastSquares:
    """y ≈ θᵀφ, updated one sample at a time (Ljung & Söderström 1983), forgetting factor ``forget``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> rls = RecursiveLeastSquares(2, forget=1.0)
    >>> for x in rng.uniform(0, 10, 500):
    ...     _ = rls.update([x, 1.0], 0.9 * x + 0.3 + rng.normal(0, 0.05))
    >>> np.round(rls.theta, 2).tolist(), bool(rls.sigmas[0] < 0.01)
    ([0.9, 0.3], True)
    """

    def __init__(self, n: int, forget: float = 1.0, prior: Any = None, prior_variance: float = 1e6) -> None:
        self.forget = forget
        self.theta = np.zeros(n) if prior is None else np.asarray(prior, dtype=float).copy()
        self.p = np.eye(n) * prior_variance
        self.noise_var = 0.0
        self.count = 0

    def predict(self, phi: Any) -> float:
        return float(np.dot(self.theta, phi))

    def update(self, phi: Any, y: float) -> float:
        """Fold in one observation; returns the a-priori residual y − θᵀφ."""
        phi = np.asarray(phi, dtype=float)
        error = float(y) - float(self.theta @ phi)
        p_phi = self.p @ phi
        gain = p_phi / (self.forget + phi @ p_phi)
        self.theta = self.theta + gain * error
        self.p = (self.p - np.outer(gain, p_phi)) / self.forget
        self.count += 1
        posterior = float(y) - float(self.theta @ phi)
        weight = max(1.0 / self.count, 1.0 - self.forget)
        self.noise_var += weight * (posterior * posterior - self.noise_var)
        return error

    @property
    def covariance(self) -> np.ndarray:
        return np.asarray(self.noise_var * self.p)

    @property
    def sigmas(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    def prediction_sigma(self, phi: Any) -> float:
        """Standard uncertainty of θᵀφ from the parameters alone (not the measurement noise)."""
        phi = np.asarray(phi, dtype=float)
        return float(np.sqrt(max(float(phi @ self.covariance @ phi), 0.0)))

    def state(self) -> dict[str, Any]:
        return {
            "forget": self.forget,
            "theta": self.theta.tolist(),
            "p": self.p.tolist(),
            "noise_var": self.noise_var,
            "count": self.count,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RecursiveLeastSquares:
        rls = cls(len(state["theta"]), state["forget"], prior=state["theta"])
        rls.p = np.asarray(state["p"], dtype=float)
        rls.noise_var = state["noise_var"]
        rls.count = state["count"]
        return rls
