"""A CUSUM that keeps its ARL₀ on autocorrelated, heavy-tailed plant data.

Real process values are not independent: a disturbance that passes through a control loop makes each
value lean on the last (AR(1) with φ ≈ 0.9 is common), and sensors add spikes. A CUSUM on such raw
values with a Gaussian limit alarms tens of times more often than its stated ARL₀, which is how a
backtest of another plant's normal run produced 539 alarms. ``ARCUSUM`` instead:

1. centres the series on a robust level (median) and fits an AR(p) model to it (least squares, order
   by BIC as statsmodels' ``ar_select_order`` chooses it, p ≤ 5), on the first two thirds of the
   in-control period, after winsorising at ±5 robust σ so outliers do not steer the coefficients;
2. charts the one-step-ahead residuals ("prewhitening", Montgomery & Mastrangelo 1991), standardised by
   their robust σ and winsorised at ±``clip`` (a robust CUSUM: one spike moves it by clip − k at most).
   The lags keep the raw values: a large innovation of the process is the process and stays in its
   predictions, while a sensor spike's echo in the next residual has the opposite sign and cancels;
3. sets the limit h empirically on the held-out last third: the adjustment coefficient θ of the
   increments z − k solves mean(exp(θ · sum of L consecutive increments)) = 1 (moving blocks of
   ``BLOCK`` keep what serial dependence the AR model left), and Siegmund's approximation with that θ
   in place of the Gaussian 2k gives the ARL; h is its root at ARL₀ for both sides together. For
   Gaussian residuals this is the classic h; heavy tails get a larger one.

The price is delay: a step in the level shows in the residuals as (1 − Σφ) of its size after the first
sample, so drifts are caught later than on independent data (``twin bench arl`` prints both).

Written here because no maintained library offers a CUSUM with an ARL₀-calibrated limit on AR
residuals; numpy fits the AR model (``ar_coefficients`` says why not statsmodels) and scipy finds the
roots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

from models.detectors import CUSUM, cusum_limit, robust_location_scale

MAX_LAG = 5
BLOCK = 5
FIT_SHARE = 2 / 3
OUTLIER_SIGMAS = 5.0
OVERSHOOT = 1.166  # Siegmund's correction ρ₊ + ρ₋ for unit-variance increments
MIN_TRAINING = 60


def ar_coefficients(centred: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """AR coefficients (lag 1 first) of a centred series, order by BIC.

    Least squares on a common sample for every order, as statsmodels' ``ar_select_order`` does, then the
    chosen order refitted on all rows: in numpy, because the live twin calibrates on its event loop and
    statsmodels took a second per feature for an hour of one-second values (a few milliseconds here).
    """
    max_lag = min(max_lag, len(centred) // 10)
    if max_lag < 1:
        return np.zeros(0)
    y = centred[max_lag:]
    lagged = np.column_stack([centred[max_lag - i - 1 : len(centred) - i - 1] for i in range(max_lag)])
    n = len(y)
    best_bic, best_order = n * math.log(max(float(np.mean(y * y)), 1e-300)), 0
    for order in range(1, max_lag + 1):
        coefficients = np.linalg.lstsq(lagged[:, :order], y, rcond=None)[0]
        rss = float(np.sum((y - lagged[:, :order] @ coefficients) ** 2))
        bic = n * math.log(max(rss / n, 1e-300)) + order * math.log(n)
        if bic < best_bic:
            best_bic, best_order = bic, order
    if best_order == 0:
        return np.zeros(0)
    rows = np.column_stack([centred[best_order - i - 1 : len(centred) - i - 1] for i in range(best_order)])
    return np.asarray(np.linalg.lstsq(rows, centred[best_order:], rcond=None)[0], dtype=float)


def residuals(centred: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """One-step-ahead prediction errors of an AR model (the first ``len(phi)`` values have none)."""
    p = len(phi)
    if p == 0:
        return centred.copy()
    lagged = np.column_stack([centred[p - i - 1 : len(centred) - i - 1] for i in range(p)])
    return centred[p:] - lagged @ phi


def adjustment_coefficient(increments: np.ndarray, block: int = BLOCK) -> float | None:
    """θ > 0 with mean(exp(θ · S)) = 1 over the moving-block sums S of ``increments`` (None: no root,
    i.e. the held-out data never moves the chart up)."""
    if increments.size <= block:
        return None
    sums = np.convolve(increments, np.ones(block), mode="valid")
    if sums.max() <= 0:
        return None

    def excess(theta: float) -> float:
        return float(np.log(np.mean(np.exp(theta * sums - np.max(theta * sums)))) + np.max(theta * sums))

    if excess(1e-6) >= 0:  # the held-out increments do not drift down: no root
        return None
    high = 1.0
    while excess(high) < 0:
        high *= 2
        if high > 1e3:
            return None
    return float(optimize.brentq(excess, 1e-6, high))


def empirical_limit(z: np.ndarray, arl0: float, k: float) -> float | None:
    """h of a two-sided CUSUM on the standardised residuals ``z`` for in-control ARL₀ (see module)."""
    sides = []
    for sign in (1.0, -1.0):
        increments = sign * z - k
        theta = adjustment_coefficient(increments)
        drift = -float(np.mean(increments))
        if theta is None or drift <= 0:
            return None
        sides.append((theta, drift, OVERSHOOT * float(np.std(z))))

    def log_rate(h: float) -> float:
        rate = 0.0
        for theta, drift, overshoot in sides:
            b = theta * (h + overshoot)
            rate += theta * drift / (math.expm1(min(b, 700.0)) - b)
        return math.log(rate)

    try:
        return float(optimize.brentq(lambda h: log_rate(h) + math.log(arl0), 1e-3, 200.0))
    except ValueError:
        return None


@dataclass
class ARCUSUM(CUSUM):
    """Two-sided CUSUM on winsorised AR residuals with an empirically calibrated limit (see module).

    ``mu`` is the series' in-control level, ``sigma`` the residuals' σ, ``phi`` the AR coefficients and
    ``h`` the limit; ``ARCUSUM.fit`` sets them all from an in-control period. The onset is where the
    alarming side last left zero, the magnitude the mean level since then minus ``mu``.

    >>> import numpy as np
    >>> rng = np.random.default_rng(4)
    >>> e = rng.standard_t(3, 6000)
    >>> x = np.zeros(6000)
    >>> for t in range(1, 6000):
    ...     x[t] = 0.9 * x[t - 1] + e[t]
    >>> detector = ARCUSUM.calibrated(x[:3000], arl0=100_000)
    >>> round(float(detector.phi[0]), 1), detector.h > cusum_limit(100_000)
    (0.9, True)
    >>> for value in x[3000:] + np.r_[np.zeros(1000), np.full(2000, 8.0)]:
    ...     detector.update(value)
    ...     if detector.drift_detected:
    ...         break
    >>> detector.drift_detected, 3000 + 950 < 3000 + detector.n < 3000 + 1200
    (True, True)
    """

    clip: float | None = 3.0
    h: float = math.nan
    phi: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        self.phi = np.asarray(self.phi, dtype=float)
        self._weights: list[float] = self.phi.tolist()
        self.lags: list[float] = [0.0] * len(self.phi)
        super().__post_init__()

    @classmethod
    def calibrated(cls, training: Any, arl0: float, delta: float = 1.0, clip: float = 3.0) -> ARCUSUM:
        """Fit level, AR model, residual σ and limit on an in-control series (NaNs are left out)."""
        series = np.asarray(training, dtype=float)
        series = series[np.isfinite(series)]
        mu, spread = robust_location_scale(series)
        if series.size < MIN_TRAINING:
            return cls(arl0=arl0, mu=mu, sigma=spread, delta=delta, clip=clip, h=cusum_limit(arl0, delta / 2))
        centred = np.clip(series - mu, -OUTLIER_SIGMAS * spread, OUTLIER_SIGMAS * spread)
        split = int(len(centred) * FIT_SHARE)
        phi = ar_coefficients(centred[:split])
        _, sigma = robust_location_scale(residuals(centred[:split], phi))
        held = np.clip(residuals(centred[split:], phi) / sigma, -clip, clip)
        gaussian = cusum_limit(arl0, delta / 2)
        h = max(empirical_limit(held, arl0, delta / 2) or gaussian, gaussian)
        detector = cls(arl0=arl0, mu=mu, sigma=sigma, delta=delta, clip=clip, h=h, phi=phi)
        detector.lags = [float(v) for v in centred[::-1][: len(phi)]]
        return detector

    @property
    def threshold(self) -> float:
        return self.h

    def standardised(self, series: Any) -> np.ndarray:
        """The one-step-ahead residuals of an in-control ``series`` in σ (NaNs left out)."""
        values = np.asarray(series, dtype=float)
        values = values[np.isfinite(values)]
        return residuals(values - self.mu, self.phi) / self.sigma

    def rebase(self, mu: float) -> None:
        """A new in-control level: the AR lags stay the process's past, as deviations from it."""
        self.lags = [lag + self.mu - mu for lag in self.lags]
        super().rebase(mu)

    def update(self, x: float) -> None:
        """One value: its AR residual, winsorised, into the CUSUM; the raw value into the lags."""
        if self._alarm:  # the AR lags are the process's past and stay
            self.reset()
        self.n += 1
        deviation = float(x) - self.mu
        lags = self.lags
        predicted = sum(w * lag for w, lag in zip(self._weights, lags, strict=True)) if lags else 0.0
        clip = self.clip if self.clip is not None else math.inf
        z = max(-clip, min(clip, (deviation - predicted) / self.sigma))
        if lags:
            lags.insert(0, deviation)
            lags.pop()
        self._tabulate(z, deviation)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "phi": self.phi.tolist(), "lags": list(self.lags)}

    def load(self, state: dict[str, Any]) -> None:
        saved = dict(state)
        self.phi = np.asarray(saved.pop("phi"), dtype=float)
        self._weights = self.phi.tolist()
        self.lags = [float(v) for v in saved.pop("lags")]
        super().load(saved)


def gaussian_cusum(training: Any, arl0: float) -> CUSUM:
    """Today's chart, for comparison: robust mean and σ of the raw series, Siegmund's Gaussian limit."""
    mu, sigma = robust_location_scale(training)
    return CUSUM(arl0=arl0, mu=mu, sigma=sigma)
