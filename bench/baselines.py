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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from river import drift

from models.backtest import SHIFT_S, Detection, score
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
class InControl:
    """The key-signal streams of one in-control run and where its training period ends."""

    streams: dict[str, pd.Series]
    train_end: pd.Timestamp
    end: pd.Timestamp


@dataclass(frozen=True)
class Matched:
    """A knob value chosen for a budget and the false alarms per shift it gave on the calibration runs."""

    value: float
    false_alarms_per_shift: float
    within_budget: bool


def run_baseline(
    build: Callable[[], Any], name: str, streams: dict[str, pd.Series], train_end: pd.Timestamp
) -> list[Detection]:
    """One detector per stream, standardised by the stream's training part; every alarm is a detection."""
    detections = []
    for column, series in streams.items():
        training, history = series[series.index <= train_end], series[series.index > train_end]
        if len(training) < 10:
            training, history = series.iloc[: len(series) // 3], series.iloc[len(series) // 3 :]
        mu, sigma = robust_location_scale(training.to_numpy(dtype=float))
        detector = build()
        machine, _, signal = column.rpartition(".")
        for t, value in zip(history.index, (history.to_numpy(dtype=float) - mu) / sigma, strict=True):
            if not math.isfinite(value):
                continue
            detector.update(float(value))
            if detector.drift_detected:
                detections.append(Detection(t, machine, signal, name, t, float(value) * sigma))
    return detections


def false_alarms_per_shift(build: Callable[[], Any], runs: Sequence[InControl]) -> float:
    """Alarms per 8 h shift after training, over in-control runs (every alarm there is false)."""
    alarms, shifts = 0, 0.0
    for run in runs:
        detections = run_baseline(build, "calibration", run.streams, run.train_end)
        result = score(detections, [], run.train_end, run.end)
        alarms += result.false_alarms
        shifts += result.monitored_s / SHIFT_S
    return alarms / shifts


def match_threshold(grid: Sequence[float], rate: Callable[[float], float], budget: float) -> Matched:
    """The most sensitive knob in ``grid`` (sensitive → strict) whose false-alarm ``rate`` is ≤ ``budget``.

    If even the strictest value exceeds the budget, that value is returned with ``within_budget`` False.
    """
    rates: dict[int, float] = {}

    def at(i: int) -> float:
        if i not in rates:
            rates[i] = rate(grid[i])
        return rates[i]

    lo, hi = 0, len(grid) - 1
    if at(hi) > budget:
        return Matched(float(grid[hi]), rates[hi], False)
    while lo < hi:
        mid = (lo + hi) // 2
        if at(mid) <= budget:
            hi = mid
        else:
            lo = mid + 1
    return Matched(float(grid[lo]), at(lo), True)


def match(baseline: Baseline, runs: Sequence[InControl], budget: float) -> Matched:
    """``baseline``'s knob at ``budget`` false alarms per shift on the in-control ``runs``."""
    return match_threshold(
        baseline.grid, lambda value: false_alarms_per_shift(partial(baseline.build, value), runs), budget
    )
