"""The detection benchmark scores every method on the same run, with the same rules."""

from __future__ import annotations

import math

import pytest

from bench.baselines import BASELINES
from bench.detection import Tally, cusum_bound, default_name, matched_name, run_scenario


def test_every_method_is_scored_on_the_same_recorded_run() -> None:
    thresholds = {"ADWIN": 1e-6, "Page-Hinkley": 200.0, "Shewhart": 5.0}
    truth, start, end, results = run_scenario("cycler-channel-offset", 2, 2.0 * 3600, thresholds)
    methods = [f(b) for b in BASELINES for f in (default_name, matched_name)]
    assert set(results) == {"linetwin", *methods}
    tallies = {name: Tally() for name in results}
    for name, detections in results.items():
        tallies[name].add("cycler-channel-offset", detections, truth, start, end)
    linetwin = tallies["linetwin"]
    assert linetwin.total_misses == 0 and linetwin.runs == {"cycler-channel-offset": 1}
    assert linetwin.false_alarms == 0
    shewhart = next(b for b in BASELINES if b.name == "Shewhart")
    assert tallies[default_name(shewhart)].false_alarms > tallies[matched_name(shewhart)].false_alarms
    assert tallies[default_name(shewhart)].false_alarms > linetwin.false_alarms


def test_cusum_delay_for_a_one_sigma_shift_is_reported_against_the_lorden_bound() -> None:
    delay, bound = cusum_bound(1e4, runs=100)
    assert bound == pytest.approx(math.log(1e4) / 0.5)
    assert 0.5 * bound < delay < 1.5 * bound
