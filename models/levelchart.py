"""Drift charts for features whose in-control level wanders: a level chart and a two-scale chart.

A CUSUM designed for a 1 σ shift of the one-second noise is the best chart there is when the noise is all
a feature does in control. On a real line it is not: a pump's delivery, a slurry's solids, a zone's heat
balance wander with time constants of tens of minutes, the hall's day moves a zone by a degree, and such
a level is as large as the noise or larger (``twin bench detection --realistic`` gave 16 to 82 false
alarms per shift with those CUSUMs). No limit on the one-second scale can know how far the level
wanders: the limit must be set where the level lives, against how far it was seen to move, and widened
by how little was seen of it.

``LevelChart`` is that chart, an EWMA for stationary process data (EWMAST, Zhang 1998) on block means:

1. values are averaged over blocks of ``block`` samples (one plant minute): noise, heavy tails and single
   spikes average out, and what is left is the level;
2. the block means are smoothed by an EWMA (λ = ½) and compared with the in-control level ``mu``; the
   chart alarms when the EWMA leaves ``mu`` by more than an indifference zone (¼ of the feature's
   one-second σ, as a CUSUM's reference value k: an in-control level a little off its training mean,
   such as a new operating day's, does not alarm) plus L σ_z;
3. the block means of the training period are fitted as an AR(1) level under white block noise (an
   ARMA(1,1), statsmodels), whose autocovariance gives σ_z, the EWMA's in-control spread (the error of
   ``mu`` itself included), and its roughness Var(Δz)/Var(z);
4. L comes from the rate at which a stationary Gaussian level crosses ±L σ_z (Rice's formula: a slow
   level crosses seldom), widened for how well σ_z is known: from ν = N/τ independent looks at the
   level (N block means, τ their integrated autocorrelation time), the crossing rate averaged over the
   estimate's χ²_ν error is (1 + L²/ν)^(−ν/2) instead of exp(−L²/2);
5. a level that moves on scales longer than a block is monitored only when the training saw at least
   ``RESOLVED`` of its autocorrelation times and four hours: a short training period that happened to
   be calm looks white and would give a limit far too narrow. Until then the chart says so
   (``resolved`` is False) and stays quiet, which is the truth about what it knows.

``TwoScale`` adds the fast side: the prewhitened CUSUM of ``models.prewhitened``, designed for a 3 σ
shift of each value against the *local* level (an EWMA of the block means that follows the level
wherever it wanders), which a wander or the day never produces but a failed heater, a broken load cell
or a stuck pump does within a few samples. Each value is winsorised at 2.5 σ. The limit is the
empirical one of independent residuals, raised where the calibration's extreme values came in bursts
more often than chance (``extremes_needed``). Each side gets half of the ARL₀.

A Monte Carlo (an Ornstein-Uhlenbeck level as large as the noise, 150 trainings each, 24 h monitored
after each, alarms within two hours of each other counted as one episode): τ = 30 min, trained 6 h:
0.013 false alarm episodes per shift per feature (24 trainings left it unresolved); τ = 60 min: 0.05
(65 unresolved); trained 45 min: unresolved in 149 of 150; white noise trained 45 min: resolved in
all, no false alarm. ``twin bench arl`` measures it on the generic path's AR(1) t₃ test as well.

Written here because no maintained library has an EWMA chart for autocorrelated data with limits from
its own training period (statsmodels and River have none); statsmodels fits the ARMA model, numpy
computes, scipy finds the roots.

References: Zhang, N. F. (1998), A statistical control chart for stationary process data, Technometrics
40(1); Rice, S. O. (1945), Mathematical analysis of random noise, Bell System Technical Journal 24;
Bartlett, M. S. (1946), On the theoretical specification of sampling properties of autocorrelated time
series, JRSS Supplement 8; Lucas & Crosier (1982), Robust CUSUM, Communications in Statistics.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, linalg, optimize

from models.detectors import Alarm, ScalarState, robust_location_scale
from models.prewhitened import ARCUSUM

BLOCK_S = 60.0  # plant seconds a block averages over
LAMBDA = 0.5
ZONE = 0.25  # the indifference zone, in σ of the one-second values
FAST_DELTA = 3.0  # the fast side's design shift, in σ of its residuals
FAST_CLIP = 2.5  # each value moves the fast side by 1 at most
#: extremes this close (in samples) belong to one burst: a CUSUM with k = δ/2 forgets one clipped value
#: within about two ordinary ones
CLUSTER_GAP = 2
FAST_TRAINING = 10_800  # the fast side's noise model is fitted on at most the last three hours of samples
LOCAL_LAMBDA = 0.5  # the fast side's local level follows the block means within a few blocks
#: the slow side takes each value within this many σ of the local level: a spike, or a burst of heavy-
#: tailed innovations that an AR process carries on for a while, moves a block mean by little
SLOW_CLIP = 4.0
MIN_BLOCKS = 10  # fewer block means than this say nothing about a level
RESOLVED = 5.0  # a level is known when the training saw this many of its autocorrelation times
MAX_PHI = 0.995
#: a level whose block means stay correlated (an autocorrelation time above ``SLOW_TAU`` blocks) is known
#: only from at least ``LEVEL_BLOCKS`` block means (four hours of one-minute blocks): a short training
#: period that happened to be calm looks white, and process disturbances have time constants up to an
#: hour or so. White block means (noise, or correlation shorter than a block) show τ ≤ 3 in 94 % of
#: 45-minute periods, a 30-minute wander in none.
SLOW_TAU = 3.0
LEVEL_BLOCKS = 240
EWMA_TERMS = 200  # (1 − λ)^200 ≈ 4e-20
OUTLIER_SIGMAS = 5.0
SQRT_2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2 * math.pi)


def block_means(series: np.ndarray, block: int) -> np.ndarray:
    """Means of consecutive ``block`` finite values, or rows of values (a row with a NaN is left out, and
    so is a last, incomplete block)."""
    values = series[np.isfinite(series).reshape(len(series), -1).all(axis=1)]
    whole = len(values) // block * block
    return values[:whole].reshape(-1, block, *values.shape[1:]).mean(axis=1)


@dataclass(frozen=True, slots=True)
class LevelModel:
    """Block means as an ARMA(1,1): an AR(1) level under white block noise (φ, θ, innovation σ²)."""

    phi: float
    theta: float
    sigma2: float

    def autocovariance(self, lags: int) -> np.ndarray:
        """γ(0), …, γ(lags − 1)."""
        phi, theta, s2 = self.phi, self.theta, self.sigma2
        gamma = np.empty(lags)
        gamma[0] = s2 * (1 + 2 * phi * theta + theta * theta) / (1 - phi * phi)
        if lags > 1:
            gamma[1:] = s2 * (1 + phi * theta) * (phi + theta) / (1 - phi * phi) * phi ** np.arange(lags - 1)
        return gamma

    @property
    def long_run(self) -> float:
        """The spectral density at zero × 2π: N × Var(mean of N) for large N."""
        return self.sigma2 * (1 + self.theta) ** 2 / (1 - self.phi) ** 2


def level_model(centred: np.ndarray) -> LevelModel | None:
    """An ARMA(1,1) of centred block means; None where no stationary level fits (φ ≥ ``MAX_PHI``: the
    training saw a trend, not a level).

    Block means whose first two autocorrelations are within noise (2/√N) are white: an ARMA(1,1) cannot
    tell φ from −θ there. Otherwise statsmodels fits it by Hannan-Rissanen (regressions: a hundredth of
    the state-space likelihood's time and as close to the truth on these series), and where that finds
    no stationary, invertible model, an AR(1) from the lag-one autocorrelation stands in.
    """
    from statsmodels.tsa.arima.model import ARIMA

    n = len(centred)
    demeaned = centred - centred.mean()
    variance = float(np.dot(demeaned, demeaned)) / n
    if variance <= 0:
        return None
    rho = [float(np.dot(demeaned[lag:], demeaned[:-lag])) / (n * variance) for lag in (1, 2)]
    if max(abs(r) for r in rho) < 2 / math.sqrt(n):
        return LevelModel(0.0, 0.0, float(np.mean(centred * centred)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = ARIMA(centred, order=(1, 0, 1), trend="n").fit(method="hannan_rissanen")
            phi, theta, sigma2 = float(fit.arparams[0]), float(fit.maparams[0]), float(fit.params[-1])
        except (ValueError, np.linalg.LinAlgError):
            phi, theta, sigma2 = math.nan, math.nan, math.nan
    if abs(phi) < MAX_PHI and abs(theta) < 1 and sigma2 > 0:
        return LevelModel(phi, theta, sigma2)
    phi = rho[0]
    if abs(phi) >= MAX_PHI:
        return None
    return LevelModel(phi, 0.0, variance * (1 - phi * phi))


def ewma_moments(gamma: np.ndarray, lam: float) -> tuple[float, float]:
    """Var(z) and Var(Δz) of the EWMA z of a stationary series with autocovariance ``gamma``."""
    weights = lam * (1 - lam) ** np.arange(len(gamma))
    steps = weights - np.r_[0.0, weights[:-1]]
    covariance = linalg.toeplitz(gamma)
    return float(weights @ covariance @ weights), float(steps @ covariance @ steps)


def upcrossing(limit: float, rho: float) -> float:
    """P(z_t < L < z_t+1) for a stationary standard Gaussian sequence with lag-one correlation ``rho``:
    Rice's rate sqrt(1 − ρ)/(π√2)·exp(−L²/2) in the limit of a smooth sequence, Φ(L)·(1 − Φ(L)) for
    independent values; in between it is the integral over z_t, done here in one dimension."""
    rho = min(max(rho, -0.999), 0.999)
    spread = math.sqrt(1 - rho * rho)

    def density(x: float) -> float:
        # math's exp and erfc, not scipy.stats: quad calls this thousands of times per limit, and a
        # frozen distribution's scalar call costs a hundred times as much
        return math.exp(-x * x / 2) / SQRT_2PI * 0.5 * math.erfc((limit - rho * x) / (spread * SQRT_2))

    value, _ = integrate.quad(density, limit - 12.0, limit, epsabs=0.0, epsrel=1e-8, limit=200)
    return max(value, 0.0)


def crossing_limit(rate: float, roughness: float, dof: float) -> float:
    """L such that a stationary Gaussian level crosses ±L σ at ``rate`` per step, with σ known to ``dof``
    degrees of freedom (the crossing averaged over the estimate's χ²_ν error: the Gaussian tail
    exp(−L²/2) becomes (1 + L²/ν)^(−ν/2)); ``roughness`` is Var(Δz)/Var(z) = 2(1 − ρ₁)."""
    rho = 1 - min(max(roughness, 0.0), 2.0) / 2

    def log_excess(limit: float) -> float:
        gaussian = 2 * upcrossing(limit, rho)
        if gaussian <= 0:
            return -math.inf
        widened = 0.0
        if math.isfinite(dof):
            widened = limit * limit / 2 - dof / 2 * math.log1p(limit * limit / dof)
        return math.log(gaussian) + widened - math.log(rate)

    if log_excess(0.5) <= 0:
        return 0.5
    high = 8.0
    while log_excess(high) > 0:
        high *= 2
        if high > 1e6:
            return math.inf
    return float(optimize.brentq(log_excess, 0.5, high))


@dataclass
class LevelChart(Alarm, ScalarState):
    """EWMA of block means against the level's in-control spread (see module); ``calibrated`` fits it.

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> wander = np.zeros(40_000)
    >>> for t in range(1, 40_000):  # an Ornstein-Uhlenbeck level, τ = 30 min, as large as the noise
    ...     wander[t] = wander[t - 1] * np.exp(-1 / 1800) + 0.033 * rng.standard_normal()
    >>> values = wander + rng.normal(0, 1, 40_000)
    >>> chart = LevelChart.calibrated(values[:28_800], arl0=1e6, block=60)
    >>> chart.limit > 4, chart.dof < 40
    (True, True)
    >>> for x in values[28_800:] + np.linspace(0, 8, 11_200):
    ...     chart.update(x)
    ...     if chart.drift_detected:
    ...         break
    >>> chart.drift_detected, chart.magnitude > 2
    (True, True)
    """

    arl0: float = 1e6
    mu: float = 0.0
    #: the EWMA's in-control σ around ``mu``, estimation of ``mu`` included
    sigma_z: float = 1.0
    #: L, in ``sigma_z``
    limit: float = math.inf
    #: the indifference zone, in the input's units
    zone: float = 0.0
    block: int = 60
    lam: float = LAMBDA
    dof: float = 1.0
    #: σ of the block means, and their integrated autocorrelation time in blocks: the standard error of
    #: a mean over many samples
    sigma_block: float = 1.0
    tau_blocks: float = 1.0
    #: the EWMA's in-control variance around the true level (``sigma_z`` without the error of ``mu``)
    var_ewma: float = math.nan

    def __post_init__(self) -> None:
        self.reset()

    @classmethod
    def calibrated(
        cls, training: Any, arl0: float, block: int, lam: float = LAMBDA, delta: float = 1.0
    ) -> LevelChart:
        """Level, spread, degrees of freedom and limit from an in-control series (NaNs left out); a
        ``delta`` above 1 widens the indifference zone for a feature judged on larger shifts."""
        series = np.asarray(training, dtype=float)
        series = series[np.isfinite(series)]
        mu, spread = robust_location_scale(series)
        zone = ZONE * delta * spread
        means = block_means(series, block)
        if len(means) < MIN_BLOCKS:
            return cls(arl0=arl0, mu=mu, sigma_z=spread, zone=zone, block=block, lam=lam)
        means = np.clip(means, mu - OUTLIER_SIGMAS * spread, mu + OUTLIER_SIGMAS * spread)
        model = level_model(means - mu)
        if model is None:
            return cls(arl0=arl0, mu=mu, sigma_z=spread, zone=zone, block=block, lam=lam)
        gamma = model.autocovariance(EWMA_TERMS)
        tau = float(model.long_run / gamma[0])
        var_z, var_dz = ewma_moments(gamma, lam)
        mean_error = min(model.long_run / len(means), gamma[0])  # Var of μ, estimated from N means
        sigma_z = math.sqrt(var_z + mean_error)
        dof = len(means) / tau  # independent looks at the level
        slow = tau > SLOW_TAU  # the level moves on scales longer than a block
        resolved = dof >= RESOLVED and (not slow or len(means) >= LEVEL_BLOCKS)
        limit = crossing_limit(block / arl0, var_dz / var_z, dof) if resolved else math.inf
        return cls(
            arl0=arl0,
            mu=mu,
            sigma_z=sigma_z,
            limit=limit,
            zone=zone,
            block=block,
            lam=lam,
            dof=dof,
            sigma_block=math.sqrt(gamma[0]),
            tau_blocks=tau,
            var_ewma=var_z,
        )

    def reset(self) -> None:
        self.n = 0
        self.z = self.mu
        self.count = 0
        self.total = 0.0
        self.blocks = 0
        self._alarm = False
        self._onset: int | None = None
        self._magnitude = 0.0
        self.upper = self.lower = 0.0
        self._start_upper = self._start_lower = 0
        self._sum_upper = self._sum_lower = 0.0

    def rebase(self, mu: float, samples: int = 0) -> None:
        """A new in-control level (the operating point moved): the chart starts afresh from it. Where it
        is the median of ``samples`` values, σ_z takes that median's error in place of the calibration
        mean's: ten minutes know a level far less well than six hours, and a chart that forgot it would
        alarm on its own reference's error. The median of n values errs by about π/2 × the mean's
        variance, and a mean of a level that wanders by σ²_block·τ/n (at most σ²_block)."""
        self.mu = mu
        if samples > 0 and math.isfinite(self.var_ewma):
            blocks = max(samples / self.block, 1.0)
            error = min(math.pi / 2 * self.sigma_block**2 * self.tau_blocks / blocks, self.sigma_block**2)
            self.sigma_z = math.sqrt(self.var_ewma + error)
        self.reset()

    @property
    def resolved(self) -> bool:
        """Whether the training period resolved the level (step 5 of the module): the chart runs."""
        return math.isfinite(self.limit)

    @property
    def statistic(self) -> float:
        return max(abs(self.z - self.mu) - self.zone, 0.0) / self.sigma_z

    @property
    def threshold(self) -> float:
        return self.limit

    @property
    def magnitude(self) -> float:
        return self._magnitude

    def update(self, x: float) -> None:
        """One value; the chart moves once a block is complete."""
        if self._alarm:
            self.reset()
        self.n += 1
        self.count += 1
        self.total += float(x)
        if self.count < self.block:
            return
        mean = self.total / self.count
        self.count, self.total = 0, 0.0
        self.blocks += 1
        self.z = self.lam * mean + (1 - self.lam) * self.z
        self._track(mean)
        if self.statistic > self.limit:
            self._alarm = True
            up = self.z > self.mu
            start, total = (
                (self._start_upper, self._sum_upper) if up else (self._start_lower, self._sum_lower)
            )
            start = min(start, self.blocks)
            self._onset = (start - 1) * self.block
            self._magnitude = total / max(self.blocks - start + 1, 1) - self.mu

    def _track(self, mean: float) -> None:
        """The change point: where a CUSUM of the block means beyond the zone last left zero."""
        if self.upper == 0.0:
            self._start_upper, self._sum_upper = self.blocks, 0.0
        if self.lower == 0.0:
            self._start_lower, self._sum_lower = self.blocks, 0.0
        self.upper = max(0.0, self.upper + mean - self.mu - self.zone)
        self.lower = max(0.0, self.lower - mean + self.mu - self.zone)
        self._sum_upper += mean
        self._sum_lower += mean

    def standard_error(self, n: int) -> float:
        """In-control σ of the mean of ``n`` consecutive values: the level does not average out faster
        than its autocorrelation time allows."""
        blocks = max(n / self.block, 1.0)
        return self.sigma_block * math.sqrt(min(self.tau_blocks / blocks, 1.0))


@dataclass
class TwoScale(Alarm):
    """A fast prewhitened CUSUM for abrupt changes and a ``LevelChart`` for drifts (see module).

    The fast side charts each value against the *local* level (an EWMA of the block means, λ = ½, that
    follows the level wherever it wanders), so a level that wanders or moves with the day never reaches
    it, while a step of 3 σ does within a few samples. ``mu`` is the in-control level, ``sigma`` the
    fast side's residual σ; the statistic is the larger of the two sides' shares of their limits, so
    the threshold is 1.
    """

    arl0: float = 1e6
    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        self.fast = ARCUSUM(arl0=self.arl0, sigma=self.sigma, delta=FAST_DELTA, clip=FAST_CLIP)
        self.slow = LevelChart(arl0=self.arl0, mu=self.mu)
        self.local = self.mu
        #: σ of the values around the local level: the slow side takes each value within ``SLOW_CLIP`` of it
        self.spread = self.sigma
        self.count = 0
        self.total = 0.0
        self._reset_flags()

    def _reset_flags(self) -> None:
        self._alarm = False
        self._onset: int | None = None
        self._magnitude = 0.0
        self.n = 0

    @classmethod
    def calibrated(cls, training: Any, arl0: float, block: int, delta: float = 1.0) -> TwoScale:
        """Both sides from an in-control series; ``delta`` widens the level's indifference zone (a process
        level judged on 2 σ where a physics residual is judged on 1 σ). The fast side stays designed for
        3 σ steps: scaled up, its limit would fall below two extreme values."""
        series = np.asarray(training, dtype=float)
        series = series[np.isfinite(series)]
        chart = cls(arl0=arl0)
        mu = robust_location_scale(series)[0]
        local = local_levels(series, block, mu)
        chart.spread = robust_location_scale(series - local)[1]
        bound = SLOW_CLIP * chart.spread
        clipped = np.clip(series, local - bound, local + bound)
        chart.slow = LevelChart.calibrated(clipped, 2 * arl0, block, delta=delta)
        chart.mu = chart.slow.mu
        recent = (series - local)[-FAST_TRAINING:]
        chart.fast = ARCUSUM.calibrated(recent, 2 * arl0, delta=FAST_DELTA, clip=FAST_CLIP)
        needed = extremes_needed(chart.fast.standardised(recent), 2 * arl0)
        chart.fast.h = max(chart.fast.h, needed * (FAST_CLIP - FAST_DELTA / 2))
        chart.fast.rebase(0.0)
        chart.sigma = chart.fast.sigma
        chart.local = float(local[-1]) if len(local) else chart.mu
        return chart

    @property
    def block(self) -> int:
        return self.slow.block

    def reset(self) -> None:
        self.fast.reset()
        self.slow.reset()
        self._reset_flags()

    def rebase(self, mu: float, samples: int = 0) -> None:
        """A new in-control level, the median of ``samples`` values: both sides start afresh from it."""
        self.mu = mu
        self.slow.rebase(mu, samples)
        self.resume(mu)

    def resume(self, level: float) -> None:
        """Charting resumes after a pause in which the level went to ``level``, with the in-control
        reference kept: the fast side restarts from ``level`` (its local level is a pause old and would
        read the wander as a step), the slow side judges the level against ``mu`` as before."""
        self.local = level
        self.count, self.total = 0, 0.0
        self.fast.reset()
        self._reset_flags()

    @property
    def resolved(self) -> bool:
        """Whether its level chart runs (``LevelChart.resolved``); the fast side always does."""
        return self.slow.resolved

    @property
    def statistic(self) -> float:
        return max(self.fast.statistic / self.fast.threshold, self.slow.statistic / self.slow.threshold)

    @property
    def threshold(self) -> float:
        return 1.0

    @property
    def magnitude(self) -> float:
        return self._magnitude

    def update(self, x: float) -> None:
        if self._alarm:
            self.reset()
        self.n += 1
        value = float(x)
        self.fast.update(value - self.local)
        bound = SLOW_CLIP * self.spread
        self.slow.update(min(max(value, self.local - bound), self.local + bound))
        self.count += 1
        self.total += value
        if self.count >= self.block:
            self.local += LOCAL_LAMBDA * (self.total / self.count - self.local)
            self.count, self.total = 0, 0.0
        if self.fast.drift_detected:
            self._alarm = True
            self._onset = self.fast.onset
            self._magnitude = self.fast.magnitude + self.local - self.mu
        elif self.slow.drift_detected:
            self._alarm = True
            self._onset = self.slow.onset
            self._magnitude = self.slow.magnitude

    def standard_error(self, n: int) -> float:
        return math.hypot(self.sigma / math.sqrt(max(n, 1)), self.slow.standard_error(n))

    def state(self) -> dict[str, Any]:
        return {
            "arl0": self.arl0,
            "mu": self.mu,
            "sigma": self.sigma,
            "spread": self.spread,
            "n": self.n,
            "alarm": self._alarm,
            "onset": self._onset,
            "magnitude": self._magnitude,
            "local": self.local,
            "count": self.count,
            "total": self.total,
            "fast": self.fast.state(),
            "slow": self.slow.state(),
        }

    def load(self, state: dict[str, Any]) -> None:
        self.arl0, self.mu, self.sigma = state["arl0"], state["mu"], state["sigma"]
        self.spread, self.n, self.local = state["spread"], state["n"], state["local"]
        self._alarm, self._onset, self._magnitude = state["alarm"], state["onset"], state["magnitude"]
        self.count, self.total = state["count"], state["total"]
        self.fast.load(dict(state["fast"]))
        self.slow.load(dict(state["slow"]))


def extremes_needed(z: np.ndarray, arl0: float) -> int:
    """How many values at the clip the fast side's limit must take where extremes come in clusters.

    The empirical limit (``models.prewhitened.empirical_limit``) is exact for independent residuals. A
    burst of extreme values, which heavy-tailed plant noise brings more often than chance, moves the
    CUSUM by up to one per value at once. For each side, the exceedances of the clip in the standardised
    calibration residuals ``z`` are grouped into clusters (no more than ``CLUSTER_GAP`` samples apart);
    the share of extremes that a cluster goes on with, beyond what independent values give (c = 1 −
    (1 − p)^gap, p the side's share at the clip) by more than two standard errors of c, is the excess
    q. Under geometric cluster sizes, clusters of at least m extremes come at r·q^(m−1) per sample (r
    the clusters' rate); m is the fewest for which that is rarer than once in ``arl0`` per side.
    Independent residuals give q = 0 and m = 1: no change. (Before, m came from the share at the clip
    alone, as if every extreme could start a burst: 5.4 × the stated ARL₀ in ``twin bench arl``.)
    """
    needed = 1
    for sign in (1.0, -1.0):
        at = np.flatnonzero(sign * z >= FAST_CLIP)
        if len(at) < 2:
            continue
        clusters = 1 + int((np.diff(at) > CLUSTER_GAP).sum())
        share = len(at) / len(z)
        goes_on = 1 - clusters / len(at)
        chance = 1 - (1 - share) ** CLUSTER_GAP
        excess = goes_on - chance - 2 * math.sqrt(chance * (1 - chance) / len(at))
        rate = clusters / len(z)
        if excess <= 0 or rate * arl0 <= 1:
            continue
        m = 1 + math.ceil(math.log(1 / (rate * arl0)) / math.log(excess))
        needed = max(needed, min(m, 50))
    return needed


def local_levels(series: np.ndarray, block: int, start: float) -> np.ndarray:
    """For each value, the local level the fast side charts it against: the EWMA (``LOCAL_LAMBDA``) of
    the block means completed before it."""
    levels = np.empty(len(series))
    level = start
    for first in range(0, len(series), block):
        chunk = series[first : first + block]
        levels[first : first + len(chunk)] = level
        if len(chunk) == block:
            level += LOCAL_LAMBDA * (float(chunk.mean()) - level)
    return levels
