"""Scaled scenarios: the same faults, smaller, recorded with ground truth that says how small."""

from __future__ import annotations

import pandas as pd
import pytest

from core.errors import ConfigError
from plant.recording import record
from plant.scenarios import SCENARIOS

SEED = 4


@pytest.mark.parametrize("name", [n for n, s in SCENARIOS.items() if s.faults])
def test_a_scaled_fault_has_the_scaled_magnitude_and_the_same_timing(name: str) -> None:
    full = SCENARIOS[name]
    scaled = full.scaled(0.25)
    assert scaled.name == f"{name} ×0.25"
    for small, big in zip(scaled.faults, full.faults, strict=True):
        assert small.magnitude == pytest.approx(0.25 * big.magnitude)
        assert (small.onset_s, small.ramp_s, small.parameter) == (big.onset_s, big.ramp_s, big.parameter)
        assert small.expected == ()
        for t in (big.onset_s - 1, big.onset_s + big.ramp_s / 2, big.onset_s + big.ramp_s + 1):
            assert small.level(t) == pytest.approx(0.25 * big.level(t))


def test_scaling_by_one_is_the_scenario_itself_and_nominal_stays_fault_free() -> None:
    assert SCENARIOS["pump-wear"].scaled(1.0) is SCENARIOS["pump-wear"]
    assert SCENARIOS["nominal"].scaled(0.5).faults == ()


@pytest.mark.parametrize("factor", [0.0, -0.5, float("nan")])
def test_a_scale_that_is_not_positive_is_refused(factor: float) -> None:
    with pytest.raises(ConfigError, match="positive"):
        SCENARIOS["pump-wear"].scaled(factor)


def test_the_recorded_ground_truth_carries_the_scaled_fault_and_the_run_is_unchanged_before_onset() -> None:
    full = SCENARIOS["dryer-zone-fault"]
    duration_s = full.faults[0].onset_s + 300
    small = record(full.scaled(0.5), SEED, duration_s)
    big = record(full.name, SEED, duration_s)
    (truth,) = small.ground_truth
    assert truth["scenario"] == small.scenario == "dryer-zone-fault ×0.5"
    assert truth["magnitude"] == 0.5 * full.faults[0].magnitude
    assert {k: v for k, v in truth.items() if k not in ("scenario", "magnitude")} == {
        k: v for k, v in big.ground_truth[0].items() if k not in ("scenario", "magnitude")
    }
    onset = pd.Timestamp(truth["onset"])
    before = small.process.index < onset
    pd.testing.assert_frame_equal(small.process[before], big.process[before])
    assert 0.4 * _zone2_drop(big.process) < _zone2_drop(small.process) < 0.6 * _zone2_drop(big.process)


def _zone2_drop(process: pd.DataFrame) -> float:
    zone2 = process["coater1.dryer_zone2_temperature"]
    return float(zone2.iloc[:60].mean() - zone2.iloc[-60:].mean())
