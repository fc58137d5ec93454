"""Multivariate PCA monitoring: Hotelling T² and SPE (Q) with per-signal contributions.

Fitted on an in-control training period (robust standardisation, scikit-learn PCA keeping the components
that explain ``variance`` of it). Limits are set at the false-alarm probability α = 1/ARL₀, split between
the two statistics: T² from the F distribution (Tracy, Young & Mason 1992), SPE from Box's g·χ²_h
approximation with g and h matched to the training SPE's mean and variance (Nomikos & MacGregor 1995).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from sklearn.decomposition import PCA

from models.detectors import MAD_TO_SIGMA, Alarm


class PCAMonitor(Alarm):
    """Hotelling T² + SPE detector over a vector of signals, River-like interface.

    ``statistic`` is the larger of T²/limit and SPE/limit, so ``threshold`` is 1; ``contributions()``
    says which signals pushed the last sample out.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> latent = rng.normal(size=(2000, 1))
    >>> train = np.hstack([latent, latent, rng.normal(size=(2000, 1))]) + 0.1 * rng.normal(size=(2000, 3))
    >>> monitor = PCAMonitor(["a", "b", "c"], arl0=1000).fit(train)
    >>> monitor.update([0.5, 0.5, 0.0]); monitor.drift_detected
    False
    >>> monitor.update([2.0, -2.0, 0.0]); monitor.drift_detected
    True
    >>> max(monitor.contributions(), key=monitor.contributions().get) in ("a", "b")
    True
    """

    def __init__(self, signals: list[str], arl0: float = 10_000.0, variance: float = 0.9) -> None:
        self.signals = list(signals)
        self.arl0 = arl0
        self.variance = variance
        self.mean = np.zeros(len(signals))
        self.scale = np.ones(len(signals))
        self.components = np.zeros((0, len(signals)))
        self.eigenvalues = np.zeros(0)
        self.t2_limit = np.inf
        self.spe_limit = np.inf
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.t2 = 0.0
        self.spe = 0.0
        self._z = np.zeros(len(self.signals))
        self._alarm = False
        self._onset: int | None = None

    def fit(self, training: Any) -> PCAMonitor:
        data = np.asarray(training, dtype=float)
        data = data[np.isfinite(data).all(axis=1)]
        self.mean = np.median(data, axis=0)
        mad = MAD_TO_SIGMA * np.median(np.abs(data - self.mean), axis=0)
        self.scale = np.where(mad > 0, mad, np.where(data.std(axis=0) > 0, data.std(axis=0), 1.0))
        z = (data - self.mean) / self.scale
        pca = PCA().fit(z)
        ratio = np.cumsum(pca.explained_variance_ratio_)
        keep = min(int(np.searchsorted(ratio, self.variance)) + 1, len(self.signals))
        keep = max(1, min(keep, len(self.signals) - 1)) if len(self.signals) > 1 else 1
        self.components = pca.components_[:keep]
        self.eigenvalues = np.maximum(pca.explained_variance_[:keep], 1e-12)
        n = len(z)
        alpha = 0.5 / self.arl0
        self.t2_limit = float(
            keep * (n - 1) * (n + 1) / (n * (n - keep)) * stats.f.isf(alpha, keep, n - keep)
        )
        spe = self._spe_of(z)
        mean, var = float(spe.mean()), float(spe.var())
        if mean > 0 and var > 0:
            g, h = var / (2 * mean), 2 * mean * mean / var
            self.spe_limit = float(g * stats.chi2.isf(alpha, h))
        else:
            self.spe_limit = np.inf
        self.reset()
        return self

    def _spe_of(self, z: np.ndarray) -> np.ndarray:
        residual = z - (z @ self.components.T) @ self.components
        return np.asarray((residual**2).sum(axis=-1))

    def update(self, x: Any) -> None:
        if self._alarm:  # starts afresh after an alarm, like the univariate detectors
            self.reset()
        self.n += 1
        z = (np.asarray(x, dtype=float) - self.mean) / self.scale
        self._z = np.where(np.isfinite(z), z, 0.0)
        scores = self.components @ self._z
        self.t2 = float(np.sum(scores**2 / self.eigenvalues))
        self.spe = float(self._spe_of(self._z))
        if not self._alarm and self.statistic > self.threshold:
            self._alarm = True
            self._onset = self.n - 1

    @property
    def statistic(self) -> float:
        return max(self.t2 / self.t2_limit, self.spe / self.spe_limit)

    @property
    def threshold(self) -> float:
        return 1.0

    @property
    def magnitude(self) -> float:
        """How far out the sample is, as a multiple of its limit."""
        return self.statistic

    def contributions(self) -> dict[str, float]:
        """Share of the dominant statistic each signal explains (SPE: squared residual; T²: scores)."""
        z = self._z
        if self.spe / self.spe_limit >= self.t2 / self.t2_limit:
            residual = z - (self.components @ z) @ self.components
            parts = residual**2
        else:
            weights = (self.components.T / self.eigenvalues) @ (self.components @ z)
            parts = np.abs(z * weights)
        total = float(parts.sum()) or 1.0
        return {name: float(p / total) for name, p in zip(self.signals, parts, strict=True)}

    def state(self) -> dict[str, Any]:
        return {
            "signals": self.signals,
            "arl0": self.arl0,
            "variance": self.variance,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "components": self.components.tolist(),
            "eigenvalues": self.eigenvalues.tolist(),
            "t2_limit": self.t2_limit,
            "spe_limit": self.spe_limit,
            "n": self.n,
            "alarm": self._alarm,
            "onset": self._onset,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PCAMonitor:
        monitor = cls(state["signals"], state["arl0"], state["variance"])
        monitor.mean = np.asarray(state["mean"])
        monitor.scale = np.asarray(state["scale"])
        monitor.components = np.asarray(state["components"]).reshape(-1, len(monitor.signals))
        monitor.eigenvalues = np.asarray(state["eigenvalues"])
        monitor.t2_limit = state["t2_limit"]
        monitor.spe_limit = state["spe_limit"]
        monitor.n, monitor._alarm, monitor._onset = state["n"], state["alarm"], state["onset"]
        return monitor
