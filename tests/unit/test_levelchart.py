"""The two-scale chart: honest on a wandering level, quick on a step, and resumable to the sample."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.hall import ou as wander
from models.detectors import make_detector
from models.levelchart import LevelChart, TwoScale, extremes_needed

BLOCK = 60


def alarms(chart: TwoScale, values: np.ndarray) -> list[int]:
    found = []
    for i, value in enumerate(values):
        chart.update(value)
        if chart.drift_detected:
            found.append(i)
    return found


def test_white_noise_trained_45_minutes_is_resolved_and_a_small_shift_is_found() -> None:
    rng = np.random.default_rng(1)
    chart = TwoScale.calibrated(rng.normal(0, 1, 2700), 1e6, BLOCK)
    assert chart.resolved
    assert alarms(chart, rng.normal(0, 1, 8 * 3600)) == [], "quiet for a shift"
    found = alarms(chart, rng.normal(0.8, 1, 600))
    assert found and found[0] < 5 * BLOCK, "a 0.8 σ shift within five blocks"


def test_a_wander_a_45_minute_calibration_cannot_know_leaves_the_level_unmonitored() -> None:
    rng = np.random.default_rng(2)
    unresolved = 0
    for _ in range(20):
        series = wander(rng, 2700, 1800, 1.0) + rng.normal(0, 1, 2700)
        unresolved += not TwoScale.calibrated(series, 1e6, BLOCK).resolved
    assert unresolved >= 19


def test_a_wander_seen_for_six_hours_is_charted_quietly_and_a_ramp_beyond_it_is_found() -> None:
    rng = np.random.default_rng(3)
    found_after = []
    for _ in range(4):
        n = 6 * 3600 + 8 * 3600 + 3 * 3600
        level = wander(rng, n, 1800, 1.0) + rng.normal(0, 1, n)
        chart = TwoScale.calibrated(level[: 6 * 3600], 1e6, BLOCK)
        if not chart.resolved:  # 15 % of six-hour periods saw too little of it (module docstring)
            continue
        assert alarms(chart, level[6 * 3600 : 14 * 3600]) == [], "quiet for a shift"
        ramp = np.linspace(0, 20, 3 * 3600)  # 20 σ of the wander over three hours
        hits = alarms(chart, level[14 * 3600 :] + ramp)
        found_after.append(hits[0] if hits else math.inf)
    assert len(found_after) >= 3
    assert max(found_after) < 2 * 3600, "every ramp within two hours"


def test_a_step_is_found_by_the_fast_side_within_seconds_while_the_day_moves_nothing() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(30 * 3600)
    day = 3 * np.sin(2 * math.pi * t / 86_400)  # a daily cycle three times the noise
    series = day + rng.normal(0, 1, len(t))
    chart = TwoScale.calibrated(series[:2700], 1e6, BLOCK)
    assert not chart.resolved, "45 minutes of a day's cycle do not resolve its level"
    assert alarms(chart, series[2700:]) == [], "the fast side charts against the local level"
    step = alarms(chart, rng.normal(0, 1, 200) + day[-200:] + 6.0)
    assert step and step[0] <= 10


def test_a_two_scale_chart_resumes_from_json_mid_block_as_if_never_stopped() -> None:
    rng = np.random.default_rng(5)
    series = wander(rng, 6 * 3600, 900, 0.5) + rng.normal(0, 1, 6 * 3600)
    chart = TwoScale.calibrated(series, 1e5, BLOCK)
    later = rng.normal(0, 1, 4000) + np.r_[np.zeros(2000), np.linspace(0, 4, 2000)]
    alarms(chart, later[:1234])
    state = {"kind": "twoscale", **chart.state()}
    saved = json.loads(json.dumps(state))
    restored = make_detector(saved.pop("kind"), saved["arl0"], saved["mu"], saved["sigma"])
    restored.load(saved)
    assert alarms(restored, later[1234:]) == alarms(chart, later[1234:])
    assert restored.statistic == pytest.approx(chart.statistic)


def test_a_rebase_charts_against_the_new_level() -> None:
    rng = np.random.default_rng(6)
    chart = TwoScale.calibrated(rng.normal(10, 1, 2700), 1e6, BLOCK)
    chart.rebase(15.0)
    assert alarms(chart, rng.normal(15, 1, 3 * 3600)) == []
    assert alarms(chart, rng.normal(10, 1, 600)), "the old level is now a shift"


def test_the_level_limit_widens_with_fewer_independent_looks() -> None:
    rng = np.random.default_rng(7)
    short = LevelChart.calibrated(wander(rng, 5 * 3600, 900, 1.0) + rng.normal(0, 1, 5 * 3600), 1e6, BLOCK)
    long = LevelChart.calibrated(wander(rng, 20 * 3600, 900, 1.0) + rng.normal(0, 1, 20 * 3600), 1e6, BLOCK)
    assert short.resolved and long.resolved
    assert short.dof < long.dof and short.limit > long.limit


def test_independent_heavy_tails_need_no_burst_allowance_but_bursts_do() -> None:
    rng = np.random.default_rng(11)
    independent = rng.standard_t(3, 10_800) / math.sqrt(3)
    assert extremes_needed(independent, 2e6) == 1
    bursty = independent.copy()
    starts = rng.choice(10_700, 40, replace=False)
    for start in starts:  # 40 bursts of four extreme values on the upper side
        bursty[start : start + 4] = 3.0
    needed = extremes_needed(bursty, 2e6)
    assert needed >= 4
    assert extremes_needed(bursty, 2e3) < needed  # a shorter ARL₀ tolerates shorter bursts


def _first_alarm(chart: TwoScale, values: np.ndarray) -> int | None:
    for i, x in enumerate(values):
        chart.update(float(x))
        if chart.drift_detected:
            return i
    return None


def test_a_resumed_chart_judges_the_new_level_on_its_slow_side_not_as_a_step() -> None:
    """After a pause the level is 4 σ off: resumed, the fast side starts from it and stays quiet, while
    the level chart still finds the shift against the kept reference; not resumed, the stale local level
    reads it as a step at once."""
    rng = np.random.default_rng(11)
    training = rng.normal(0.0, 1.0, 6 * 3600)
    after = rng.normal(4.0, 1.0, 1200)
    stale = TwoScale.calibrated(training, arl0=1e6, block=60)
    assert (_first_alarm(stale, after) or 0) < 10
    resumed = TwoScale.calibrated(training, arl0=1e6, block=60)
    resumed.resume(4.0)
    first = _first_alarm(resumed, after)
    assert first is not None and 30 <= first < 600, first  # a block mean, not a sample or three
    assert resumed.mu == pytest.approx(stale.mu) and resumed.magnitude == pytest.approx(4.0, abs=0.5)


def test_a_rebase_on_ten_minutes_allows_for_how_little_they_know_of_a_wandering_level() -> None:
    """A 20-minute wander as large as the noise, calibrated on six hours. A move re-baselines on the
    median of ten minutes that caught the wander 2 σ high; the level then wanders 2 σ low. Charted as if
    the ten minutes knew the level as well as six hours did, that swing is an alarm; allowing for the
    median's error it is not, and a drift of eight times the wander after the move is still found."""
    rng = np.random.default_rng(15)
    training = wander(rng, 21_600, 1200, 1.0) + rng.normal(0, 1, 21_600)
    ten_minutes = 2.0 + rng.normal(0, 1, 600)
    swing = np.interp(np.arange(3600), [0, 2400], [2.0, -2.0])  # the wander's own pace, 20-minute scale
    later = swing + wander(rng, 3600, 1200, 0.2) + rng.normal(0, 1, 3600)
    naive = TwoScale.calibrated(training, 1e6, BLOCK)
    naive.rebase(float(np.median(ten_minutes)))
    assert alarms(naive, later) != []
    honest = TwoScale.calibrated(training, 1e6, BLOCK)
    honest.rebase(float(np.median(ten_minutes)), len(ten_minutes))
    assert honest.slow.sigma_z > naive.slow.sigma_z
    assert alarms(honest, later) == []
    assert alarms(honest, later + 4.0 + np.linspace(0, 6, 3600)) != []
