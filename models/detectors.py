"""Drift detectors with one small interface, thresholds derived from a target in-control ARL₀.

Every detector follows River's shape (``update(x)``, ``drift_detected``, and a reset of its own on the
first update after an alarm, so no caller has to remember one) and adds what an engineer needs
from an alarm: ``onset`` (sample index of the estimated change point, counted from the last ``reset``),
``magnitude`` (estimated mean shift in the input's units), ``statistic`` and ``threshold``. Limits come
from the average run length ARL₀ wanted in control, never from per-scenario tuning; the in-control mean
and σ come from a training period (``robust_location_scale``).

Why not River's detectors: they have no ARL₀-based limits, no change-point estimate and no magnitude;
River's ADWIN and Page-Hinkley are the baselines in ``twin bench detection``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from scipy import optimize, sparse, stats
from scipy.sparse import linalg

MAD_TO_SIGMA = 1.4826


def robust_location_scale(values: Any) -> tuple[float, float]:
    """Median and σ of a training period, robust to outliers yet nearly as efficient as the std.

    The MAD alone is ~1.65x noisier than the standard deviation, and an underestimated σ costs ARL₀
    dearly; so σ is the standard deviation of the points within 4 MAD-σ of the median.
    """
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return 0.0, 1.0
    centre = float(np.median(data))
    mad_sigma = MAD_TO_SIGMA * float(np.median(np.abs(data - centre)))
    kept = data[np.abs(data - centre) <= 4 * mad_sigma] if mad_sigma > 0 else data
    sigma = float(np.std(kept, ddof=1)) if kept.size > 1 else 0.0
    return centre, sigma if sigma > 0 else 1.0


class Detector(Protocol):
    """What the line model, the backtest and the benchmark need from a univariate detector."""

    mu: float
    sigma: float

    def update(self, x: float) -> None: ...

    @property
    def drift_detected(self) -> bool: ...

    @property
    def onset(self) -> int | None: ...

    @property
    def magnitude(self) -> float: ...

    @property
    def statistic(self) -> float: ...

    @property
    def threshold(self) -> float: ...

    def reset(self) -> None: ...

    def rebase(self, mu: float) -> None: ...

    def standard_error(self, n: int) -> float: ...

    def state(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


def siegmund_arl(k: float, h: float, shift: float = 0.0) -> float:
    """Siegmund's approximation of a one-sided CUSUM's ARL (unit-variance, reference k, limit h)."""
    delta = shift - k
    b = h + 1.166
    if abs(delta) < 1e-9:
        return b * b
    growth = np.exp(min(-2 * delta * b, 700.0))  # beyond that the ARL is infinite for any purpose
    return float((growth + 2 * delta * b - 1) / (2 * delta * delta))


@lru_cache(maxsize=256)
def cusum_limit(arl0: float, k: float = 0.5, reference_cells: int = 0) -> float:
    """h of a two-sided CUSUM for in-control ARL₀ (each side runs 2·ARL₀: 1/ARL = 1/ARL⁺ + 1/ARL⁻).

    With ``reference_cells`` = n > 0 the in-control mean is itself the mean of n in-control samples, so
    the chart runs off-centre by b ~ N(0, 1/n) σ; h then gives ARL₀ for the false-alarm *rate* averaged
    over b (Gauss-Hermite nodes), as over many channels each with its own estimated reference. The
    known-mean h would alarm an order of magnitude more often with n = 8 (Jones, Champ & Rigdon 2004).
    """
    if reference_cells <= 0:
        return float(optimize.brentq(lambda h: siegmund_arl(k, h) - 2 * arl0, 1e-6, 100.0))
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    offsets, weights = nodes / np.sqrt(reference_cells), weights / weights.sum()

    def log_rate(h: float) -> float:
        rates = [1 / siegmund_arl(k, h, b) + 1 / siegmund_arl(k, h, -b) for b in offsets]
        return float(np.log(np.dot(weights, rates)))

    return float(optimize.brentq(lambda h: log_rate(h) + np.log(arl0), 1e-3, 500.0))


def ewma_arl(lam: float, limit: float, shift: float = 0.0, states: int = 151) -> float:
    """ARL of a two-sided EWMA with asymptotic limits ±limit·σ_z (Brook & Evans Markov chain).

    The in-control band is cut into ``states`` cells; the chart's value moves between cells with
    Gaussian transition probabilities, and the ARL from the centre solves (I − P)·ARL = 1.
    """
    c = limit * np.sqrt(lam / (2 - lam))
    width = 2 * c / states
    mids = -c + width * (np.arange(states) + 0.5)
    upper = (mids[None, :] + width / 2 - (1 - lam) * mids[:, None]) / lam - shift
    lower = (mids[None, :] - width / 2 - (1 - lam) * mids[:, None]) / lam - shift
    transition = stats.norm.cdf(upper) - stats.norm.cdf(lower)
    arl = np.linalg.solve(np.eye(states) - transition, np.ones(states))
    return float(arl[states // 2])


@lru_cache(maxsize=256)
def ewma_limit(arl0: float, lam: float = 0.1) -> float:
    """L (in σ of the EWMA statistic) for in-control ARL₀, by root finding on the Markov-chain ARL."""
    return float(optimize.brentq(lambda limit: np.log(ewma_arl(lam, limit)) - np.log(arl0), 0.5, 8.0))


def shewhart_limit(arl0: float) -> float:
    """L of a two-sided ±L·σ chart: each point alarms with probability 1/ARL₀."""
    return float(stats.norm.isf(0.5 / arl0))


class Alarm:
    """The alarm flag and estimated change point every detector reports (River's ``drift_detected``)."""

    _alarm: bool
    _onset: int | None

    @property
    def drift_detected(self) -> bool:
        return self._alarm

    @property
    def onset(self) -> int | None:
        return self._onset


class ScalarState:
    """State as the detector's scalar attributes: all a chart needs to resume after a restart."""

    def state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if isinstance(v, int | float | bool | type(None))}

    def load(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


@dataclass
class _Base(Alarm, ScalarState):
    """Standardisation, sample count and alarm bookkeeping shared by the univariate charts."""

    arl0: float = 10_000.0
    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self._alarm = False
        self._onset: int | None = None
        self._magnitude = 0.0

    def rebase(self, mu: float) -> None:
        """A new in-control mean (the operating point moved): the chart starts afresh from it."""
        self.mu = mu
        self.reset()

    def standard_error(self, n: int) -> float:
        """In-control σ of the mean of ``n`` consecutive values (independent ones here)."""
        return self.sigma / float(np.sqrt(max(n, 1)))

    def fit(self, training: Any) -> _Base:
        """Take the in-control mean and σ from a training period (median, MAD)."""
        self.mu, self.sigma = robust_location_scale(training)
        self.reset()
        return self

    def update(self, x: float) -> None:
        """Fold in one observation (each chart defines its statistic)."""
        raise NotImplementedError

    @property
    def statistic(self) -> float:
        raise NotImplementedError

    @property
    def threshold(self) -> float:
        raise NotImplementedError

    def _z(self, x: float) -> float:
        if self._alarm:  # the first observation after an alarm starts afresh, as River's detectors do
            self.reset()
        self.n += 1
        return (float(x) - self.mu) / self.sigma

    @property
    def magnitude(self) -> float:
        return self._magnitude


@dataclass
class CUSUM(_Base):
    """Two-sided tabular CUSUM (Page 1954) with k = δ/2 and h from Siegmund's ARL approximation.

    The change point is the last time the alarming side's sum left zero; the magnitude is the mean of
    the samples since then minus the in-control mean.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> detector = CUSUM(arl0=1000, mu=10.0, sigma=0.5)
    >>> for x in np.r_[rng.normal(10, 0.5, 300), rng.normal(10.5, 0.5, 100)]:
    ...     detector.update(x)
    ...     if detector.drift_detected:
    ...         break
    >>> detector.drift_detected, 290 <= detector.onset <= 310, round(detector.magnitude, 1)
    (True, True, 0.5)
    """

    delta: float = 1.0
    #: n > 0: ``mu`` is the mean of n in-control samples, and h allows for its error (``cusum_limit``)
    reference_cells: int = 0
    #: winsorise each standardised value at ±clip (a robust CUSUM, Lucas & Crosier 1982): one sensor
    #: spike then moves a side by clip − k at most instead of raising an alarm on its own
    clip: float | None = None

    def reset(self) -> None:
        super().reset()
        self.upper = self.lower = 0.0
        self._start_upper = self._start_lower = 0
        self._sum_upper = self._sum_lower = 0.0

    @property
    def statistic(self) -> float:
        return max(self.upper, self.lower)

    @property
    def threshold(self) -> float:
        return cusum_limit(self.arl0, self.delta / 2, self.reference_cells)

    def update(self, x: float) -> None:
        z = self._z(x)
        if self.clip is not None:
            z = max(-self.clip, min(self.clip, z))
        self._tabulate(z, z * self.sigma)

    def _tabulate(self, z: float, level: float) -> None:
        """Fold standardised ``z`` into both one-sided sums; ``level`` (the input's units) is averaged
        since the alarming side left zero for the magnitude."""
        k = self.delta / 2
        if self.upper == 0.0:
            self._start_upper, self._sum_upper = self.n, 0.0
        if self.lower == 0.0:
            self._start_lower, self._sum_lower = self.n, 0.0
        self.upper = max(0.0, self.upper + z - k)
        self.lower = max(0.0, self.lower - z - k)
        self._sum_upper += level
        self._sum_lower += level
        if not self._alarm and self.statistic > self.threshold:
            self._alarm = True
            up = self.upper >= self.lower
            start, total = (
                (self._start_upper, self._sum_upper) if up else (self._start_lower, self._sum_lower)
            )
            self._onset = start - 1
            self._magnitude = total / (self.n - start + 1)


@dataclass
class EWMA(_Base):
    """Two-sided EWMA chart (Roberts 1959), L from the Markov-chain ARL at the target ARL₀.

    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> detector = EWMA(arl0=1000, lam=0.1)
    >>> for x in np.r_[rng.normal(0, 1, 500), rng.normal(-1, 1, 200)]:
    ...     detector.update(x)
    ...     if detector.drift_detected:
    ...         break
    >>> detector.drift_detected, detector.n > 500, detector.magnitude < 0
    (True, True, True)
    """

    lam: float = 0.1

    def reset(self) -> None:
        super().reset()
        self.z = 0.0
        self._start = 0
        self._sum = 0.0

    @property
    def statistic(self) -> float:
        return abs(self.z)

    @property
    def threshold(self) -> float:
        return ewma_limit(self.arl0, self.lam) * float(np.sqrt(self.lam / (2 - self.lam)))

    def update(self, x: float) -> None:
        value = self._z(x)
        previous = self.z
        self.z = self.lam * value + (1 - self.lam) * self.z
        if previous == 0.0 or np.sign(self.z) != np.sign(previous):
            self._start, self._sum = self.n, 0.0
        self._sum += value
        if not self._alarm and self.statistic > self.threshold:
            self._alarm = True
            self._onset = self._start - 1
            self._magnitude = self._sum / (self.n - self._start + 1) * self.sigma


@dataclass
class Shewhart(_Base):
    """Individuals chart at ±L·σ with L set so that ARL₀ = 1/P(|z| > L) (370 for the classic 3σ).

    >>> detector = Shewhart(arl0=370, mu=20.0, sigma=0.2)
    >>> round(detector.threshold, 2)
    3.0
    >>> detector.update(20.1); detector.drift_detected
    False
    >>> detector.update(21.0); detector.drift_detected, detector.onset, round(detector.magnitude, 2)
    (True, 1, 1.0)
    """

    def reset(self) -> None:
        super().reset()
        self.last = 0.0

    @property
    def statistic(self) -> float:
        return abs(self.last)

    @property
    def threshold(self) -> float:
        return shewhart_limit(self.arl0)

    def update(self, x: float) -> None:
        self.last = self._z(x)
        if not self._alarm and self.statistic > self.threshold:
            self._alarm = True
            self._onset = self.n - 1
            self._magnitude = self.last * self.sigma


def bernoulli_cusum_arl(p: float, m: int, h: int) -> float:
    """ARL of the integer Bernoulli CUSUM S = max(0, S + m·x − 1), alarm at S ≥ h, from S = 0.

    Its states are the integers 0 … h−1, so the Markov chain is exact (no discretisation):
    a flag (probability p) moves S up by m − 1, any other item down by 1; (I − Q)·ARL = 1.
    """
    states = np.arange(h)
    up = states + m - 1
    inside = up < h
    rows = np.r_[states[inside], states]
    cols = np.r_[up[inside], np.maximum(states - 1, 0)]
    values = np.r_[np.full(int(inside.sum()), p), np.full(h, 1 - p)]
    q = sparse.csc_matrix((values, (rows, cols)), shape=(h, h))
    arl = linalg.spsolve(sparse.identity(h, format="csc") - q, np.ones(h))
    return float(np.atleast_1d(arl)[0])


@lru_cache(maxsize=256)
def bernoulli_cusum_design(arl0: float, p0: float, p1: float) -> tuple[int, int]:
    """Weight m and limit h of a Bernoulli CUSUM for a share shift p0 → p1 at in-control ARL₀ (items).

    Reynolds & Stoumbos (1999): the log-likelihood ratio per item, divided by ln(p1(1−p0)/(p0(1−p1))),
    is x − γ with γ = ln((1−p0)/(1−p1)) / ln(p1(1−p0)/(p0(1−p1))); γ is rounded to 1/m so the chart
    lives on integers, and h is the smallest integer limit whose exact ARL₀ reaches the target.
    """
    gamma = np.log((1 - p0) / (1 - p1)) / np.log(p1 * (1 - p0) / (p0 * (1 - p1)))
    m = max(round(1 / gamma), 2)
    high = m
    while bernoulli_cusum_arl(p0, m, high) < arl0:
        high *= 2
    low = high // 2 if high > m else 1
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if bernoulli_cusum_arl(p0, m, middle) < arl0 else (low, middle)
    return m, high


@dataclass
class BernoulliCUSUM(Alarm, ScalarState):
    """CUSUM of a yes/no flag per item (Reynolds & Stoumbos 1999): a share rising from p0 towards p1.

    The statistic is in flags: each flag adds 1 − γ, each other item takes γ ≈ p off. The onset is
    the item after which the statistic last left zero; the magnitude is the share of flags since then.

    >>> import numpy as np
    >>> rng = np.random.default_rng(3)
    >>> detector = BernoulliCUSUM(arl0=10_000, p0=0.01, p1=0.05)
    >>> for flag in np.r_[rng.random(2000) < 0.01, rng.random(400) < 0.1]:
    ...     detector.update(bool(flag))
    ...     if detector.drift_detected:
    ...         break
    >>> detector.drift_detected, detector.n > 2000, detector.magnitude > 0.05
    (True, True, True)
    """

    arl0: float = 10_000.0
    p0: float = 0.01
    p1: float = 0.05

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self.score = 0  # S in units of γ = 1/m
        self.start = 0
        self.flags = 0
        self._alarm = False
        self._onset: int | None = None
        self._magnitude = 0.0

    @property
    def design(self) -> tuple[int, int]:
        return bernoulli_cusum_design(self.arl0, self.p0, self.p1)

    @property
    def statistic(self) -> float:
        return self.score / self.design[0]

    @property
    def threshold(self) -> float:
        m, h = self.design
        return h / m

    @property
    def magnitude(self) -> float:
        return self._magnitude

    def update(self, flag: bool) -> None:
        if self._alarm:
            self.reset()
        m, h = self.design
        self.n += 1
        if self.score == 0:
            self.start, self.flags = self.n, 0
        self.flags += int(flag)
        self.score = max(0, self.score + m * int(flag) - 1)
        if not self._alarm and self.score >= h:
            self._alarm = True
            self._onset = self.start - 1
            self._magnitude = self.flags / (self.n - self.start + 1)


DETECTORS: dict[str, type[_Base]] = {"cusum": CUSUM, "ewma": EWMA, "shewhart": Shewhart}
#: what ``models.detector`` may name: the two-scale chart (``models.levelchart``), the prewhitened CUSUM
#: (``models.prewhitened``) and the classic charts above
DETECTOR_KINDS = ("twoscale", "arcusum", *DETECTORS)


def make_detector(kind: str, arl0: float, mu: float = 0.0, sigma: float = 1.0, **options: Any) -> Detector:
    """A univariate detector by name (``cusum``, ``ewma``, ``shewhart``, ``arcusum``); options such as
    CUSUM's δ. An ``arcusum`` made here is a blank to ``load`` a saved state into; a new one is fitted
    by ``models.prewhitened.ARCUSUM.calibrated``."""
    if kind == "arcusum":
        from models.prewhitened import ARCUSUM  # it builds on the charts of this module

        return ARCUSUM(arl0=arl0, mu=mu, sigma=sigma, **options)
    if kind == "twoscale":
        from models.levelchart import TwoScale  # it builds on the charts of this module

        return TwoScale(arl0=arl0, mu=mu, sigma=sigma)
    return DETECTORS[kind](arl0=arl0, mu=mu, sigma=sigma, **options)
