"""Matched baseline thresholds: chosen on in-control calibration runs, within the false-alarm budget."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, partial

import pytest

from bench.baselines import BASELINES, Baseline, InControl, false_alarms_per_shift, match, match_threshold
from bench.detection import calibration_runs

GRID = tuple(range(1, 101))


def _counted(rate: Callable[[float], float]) -> tuple[Callable[[float], float], list[float]]:
    calls: list[float] = []

    def wrapped(value: float) -> float:
        calls.append(value)
        return rate(value)

    return wrapped, calls


def test_the_search_finds_the_most_sensitive_value_within_the_budget_in_few_evaluations() -> None:
    rate, calls = _counted(lambda k: 100 * math.exp(-k / 10))
    matched = match_threshold(GRID, rate, 1.0)
    first_within = next(k for k in GRID if 100 * math.exp(-k / 10) <= 1.0)
    assert (matched.value, matched.within_budget) == (first_within, True)
    assert matched.false_alarms_per_shift <= 1.0
    assert len(calls) <= math.ceil(math.log2(len(GRID))) + 1


def test_a_tighter_budget_never_gives_a_more_sensitive_threshold() -> None:
    values = [
        match_threshold(GRID, lambda k: 100 * math.exp(-k / 10), b).value for b in (50, 10, 1, 0.1, 0.01)
    ]
    assert values == sorted(values)


def test_a_budget_no_value_meets_is_flagged_with_the_strictest_value() -> None:
    matched = match_threshold(GRID, lambda k: 5.0, 1.0)
    assert (matched.value, matched.within_budget) == (GRID[-1], False)


@cache
def _runs() -> tuple[InControl, ...]:
    return tuple(calibration_runs(3, 2 * 3600))


@pytest.mark.parametrize("baseline", BASELINES, ids=lambda b: b.name)
def test_the_matched_knob_holds_the_budget_on_the_calibration_runs(baseline: Baseline) -> None:
    runs = _runs()
    matched = match(baseline, runs, 2.0)
    assert matched.within_budget
    assert (
        false_alarms_per_shift(partial(baseline.build, matched.value), runs) == matched.false_alarms_per_shift
    )
    assert matched.false_alarms_per_shift <= 2.0
    assert false_alarms_per_shift(partial(baseline.build, baseline.grid[0]), runs) > 2.0


def test_shewhart_false_alarms_fall_monotonically_as_k_grows() -> None:
    shewhart = next(b for b in BASELINES if b.name == "Shewhart")
    rates = [false_alarms_per_shift(partial(shewhart.build, k), _runs()) for k in shewhart.grid[::20]]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] > rates[-1]
