"""The benchmark's baselines, River's ADWIN and Page-Hinkley and a k·σ Shewhart chart, and their thresholds.

Each baseline runs on one standardised stream per key signal and has one threshold knob: ADWIN's δ,
Page-Hinkley's threshold λ, the chart's k. A library default says nothing about false alarms on this
line, so ``match_threshold`` picks the knob for a false-alarm budget instead: on in-control calibration
runs (nominal runs at seeds the evaluation never uses) it counts the alarms per 8 h shift over a grid of
knob values, ordered from most sensitive to strictest, and bisects for the most sensitive value within
the budget. Bisection assumes false alarms fall as the knob tightens (exact for the chart, near enough for
ADWIN and Page-Hinkley); whatever it returns was itself measured within the budget.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from river import drift

from models.backtest import SHIFT_S, Detection
from models.detectors import robust_location_scale


class ShewhartChart:
    """The plain individuals chart an engineer starts with: alarm beyond ±k·σ of the training period."""

    def __init__(self, k: float = 3.0) -> None:
        self.k = k
        self.drift_detected = False

    def update(self, z: float) -> None:
        self.drift_detected = abs(z) > self.k


@dataclass(frozen=True)
class Baseline:
    """A detector family with its threshold knob: symbol, library default, and values to search."""

    name: str
    knob: str
    default: float
    build: Callable[[float], Any]
    grid: tuple[float, ...]  # from most sensitive to strictest


BASELINES = (
    Baseline("ADWIN", "δ", 0.002, lambda v: drift.ADWIN(delta=v), tuple(np.geomspace(1.0, 1e-15, 151))),
    Baseline(
        "Page-Hinkley",
        "λ",
        50.0,
        lambda v: drift.PageHinkley(threshold=v),
        tuple(np.geomspace(1.0, 1e5, 101)),
    ),
    Baseline("Shewhart", "k", 3.0, ShewhartChart, tuple(np.round(np.arange(2.0, 12.01, 0.05), 2))),
)


@dataclass(frozen=True)
class Standardised:
    """A stream after its training period, finite values in σ of that period; alarms count from ``scored``
    (the first value after the training period: short cell streams train on their first third)."""

    times: pd.Index
    z: list[float]
    sigma: float
    scored: int


def standardise(streams: dict[str, pd.Series], train_end: pd.Timestamp) -> dict[str, Standardised]:
    """Every stream centred and scaled by its training part (median, robust σ), as all baselines see it."""
    result = {}
    for column, series in streams.items():
        training, history = series[series.index <= train_end], series[series.index > train_end]
        if len(training) < 10:
            training, history = series.iloc[: len(series) // 3], series.iloc[len(series) // 3 :]
        mu, sigma = robust_location_scale(training.to_numpy(dtype=float))
        z = (history.to_numpy(dtype=float) - mu) / sigma
        finite = np.isfinite(z)
        times = history.index[finite]
        scored = int(times.searchsorted(train_end, side="right"))
        result[column] = Standardised(times, z[finite].tolist(), sigma, scored)
    return result


@dataclass(frozen=True)
class InControl:
    """One in-control run as the baselines see it, and the 8 h shifts its alarms are counted over."""

    streams: dict[str, Standardised]
    shifts: float

    @classmethod
    def of(cls, streams: dict[str, pd.Series], train_end: pd.Timestamp, end: pd.Timestamp) -> InControl:
        return cls(standardise(streams, train_end), (end - train_end).total_seconds() / SHIFT_S)


@dataclass(frozen=True)
class Matched:
    """A knob value chosen for a budget and the false alarms per shift it gave on the calibration runs."""

    value: float
    false_alarms_per_shift: float
    within_budget: bool


def run_baseline(
    build: Callable[[], Any], name: str, streams: dict[str, pd.Series], train_end: pd.Timestamp
) -> list[Detection]:
    """One detector per standardised stream; every alarm is a detection."""
    detections = []
    for column, stream in standardise(streams, train_end).items():
        detector = build()
        machine, _, signal = column.rpartition(".")
        for t, value in zip(stream.times, stream.z, strict=True):
            detector.update(value)
            if detector.drift_detected:
                detections.append(Detection(t, machine, signal, name, t, value * stream.sigma))
    return detections


def _alarms(build: Callable[[], Any], stream: Standardised) -> int:
    detector = build()
    alarms = 0
    for i, value in enumerate(stream.z):
        detector.update(value)
        alarms += detector.drift_detected and i >= stream.scored
    return int(alarms)


def false_alarms_per_shift(build: Callable[[], Any], runs: Sequence[InControl]) -> float:
    """Alarms per 8 h shift after training, over in-control runs (every alarm there is false)."""
    alarms = sum(_alarms(build, stream) for run in runs for stream in run.streams.values())
    return alarms / sum(run.shifts for run in runs)


def match_threshold(grid: Sequence[float], rate: Callable[[float], float], budget: float) -> Matched:
    """The most sensitive knob in ``grid`` (sensitive → strict) whose false-alarm ``rate`` is ≤ ``budget``.

    If even the strictest value exceeds the budget, that value is returned with ``within_budget`` False.
    """
    rates: dict[int, float] = {}

    def at(i: int) -> float:
        if i not in rates:
            rates[i] = rate(grid[i])
        return rates[i]

    last = len(grid) - 1
    if at(last) > budget:
        return Matched(float(grid[last]), rates[last], False)
    first = bisect.bisect_left(range(last), True, key=lambda i: at(i) <= budget)
    return Matched(float(grid[first]), at(first), True)


def match(baseline: Baseline, runs: Sequence[InControl], budget: float) -> Matched:
    """``baseline``'s knob at ``budget`` false alarms per shift on the in-control ``runs``."""
    return match_threshold(
        baseline.grid, lambda value: false_alarms_per_shift(partial(baseline.build, value), runs), budget
    )
