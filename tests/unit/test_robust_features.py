"""A step's charts on what real sensors and operators do: frozen values, spikes, setpoint moves, new lots."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from models.detectors import CUSUM, cusum_limit
from models.line import LineModel
from models.prewhitened import ARCUSUM
from models.replay import alarms, replay
from models.stale import Freeze, repeat_runs
from plant.recording import Recording, record
from plant.scenarios import get_scenario
from plant.trials import SetpointWrite

HOUR = 3600.0
ZONE = "coater1.dryer_zone1_temperature"


@cache
def _nominal() -> Recording:
    return record("nominal", 5, 3 * HOUR)


def _at(process: pd.DataFrame, hours: float) -> pd.Timestamp:
    return process.index[0] + pd.Timedelta(hours=hours)


def _with_lot_from(hours: float) -> pd.DataFrame:
    """The nominal run with a new lot from ``hours`` on: its lab value declares 0.6 points more solids,
    and the loading and density follow."""
    process = _nominal().process.copy()
    later = process.index >= _at(process, hours)
    solids = process["coater1.slurry_solids"]
    step = 0.6  # percentage points: a new lot, declared by its lab value
    process.loc[later, "coater1.dry_loading"] *= (solids[later] + step) / solids[later]
    process.loc[later, "coater1.slurry_solids"] += step
    process.loc[later, "coater1.slurry_density"] += 0.01
    return process


def test_repeat_runs_count_exact_repeats_and_restart_after_a_gap() -> None:
    assert repeat_runs([1.0, 1.0, 2.0, float("nan"), 2.0, 2.0, 2.0]) == [2, 1, 3]


def test_a_frozen_value_is_withheld_from_its_first_repeat_until_it_changes() -> None:
    rng = np.random.default_rng(1)
    calibration = [(t, {"x": float(rng.normal()), "q": float(t // 4)}) for t in range(600)]
    freeze = Freeze.learnt(calibration)
    assert freeze.limits["x"] == 5, "a noisy signal never repeats: the floor"
    assert freeze.limits["q"] >= 12, "a quantised one repeats 4 ticks in control: 3 x that"
    seen = [freeze.mask(t, {"x": 0.5, "q": 1.0}) for t in range(1000, 1010)]
    assert all("x" in s for s in seen[:5]) and not any("x" in s for s in seen[5:])
    assert all("q" in s for s in seen), "10 repeats are in control for q"
    assert freeze.since_ns == {"x": 1000}
    assert "x" in freeze.mask(1010, {"x": 0.6}) and freeze.since_ns == {}
    restored = Freeze.from_state(freeze.state())
    assert restored.state() == freeze.state()


def test_a_clipped_cusum_ignores_one_spike_the_plain_one_alarms_on() -> None:
    for clip, alarmed in ((None, True), (4.0, False)):
        detector = CUSUM(arl0=1e6, clip=clip)
        for x in [0.0] * 50 + [30.0] + [0.0] * 50:
            detector.update(x)
            if detector.drift_detected:
                break
        assert detector.drift_detected is alarmed


def test_a_prewhitened_limit_is_never_below_the_gaussian_one() -> None:
    bounded = np.random.default_rng(2).uniform(-1, 1, 3000)  # lighter tails than Gaussian
    detector = ARCUSUM.calibrated(bounded, arl0=1e6, delta=2.0)
    assert detector.h >= cusum_limit(1e6, 1.0)


def test_a_frozen_thermocouple_and_a_spike_raise_nothing_and_the_frozen_one_is_reported() -> None:
    process = _nominal().process.copy()
    setpoint = process["coater1.dryer_zone1_setpoint"].iloc[0]
    frozen = (process.index >= _at(process, 1.5)) & (process.index < _at(process, 2.0))
    process.loc[frozen, ZONE] = setpoint + 0.6  # 2 σ off, held for 30 minutes
    process.loc[_at(process, 2.2), ZONE] = setpoint + 25.0
    model = LineModel(calibration_s=2700.0)
    replay(model, process[process.index < _at(process, 1.75)])
    [(machine, signal, since)] = model.frozen()
    assert (machine, signal) == ("coater1", "dryer_zone1_temperature")
    assert abs(since - _at(process, 1.5).value) < 2e9
    replay(model, process[process.index >= _at(process, 1.75)])
    assert model.steps["coater1"].stale() == {}
    found = [f for f in alarms(replay(LineModel(calibration_s=2700.0), process)) if f.machine == "coater1"]
    assert found == []


def test_an_operator_move_raises_nothing_and_a_wearing_pump_after_it_is_still_caught() -> None:
    moves = [
        SetpointWrite(3000.0, "coater1.web_speed_setpoint", 2.0 * 1.05),
        SetpointWrite(3000.0, "coater1.pump_flow_setpoint", 79.28 * 1.05),
        SetpointWrite(3000.0, "calender1.line_load_setpoint", 800.0 * 1.03),
    ]
    nominal = record("nominal", 6, 3 * HOUR, setpoints=moves)
    model = LineModel(calibration_s=2700.0)
    assert alarms(replay(model, nominal.process)) == []
    assert model.steps["coater1"].moved_ns > 0
    assert model.steps["calender1"].moved_ns >= model.steps["coater1"].moved_ns, "downstream follows"
    wear = record("pump-wear", 6, 4 * HOUR, setpoints=moves)
    found = alarms(replay(LineModel(calibration_s=2700.0), wear.process))
    assert [f.cause for f in found][:1] == ["pump_wear"]


def test_a_dryer_zone_failing_just_after_a_speed_move_is_not_absorbed_by_the_re_baseline() -> None:
    """The operator moves speed and flow; a minute later zone 2's heater bank fails (at a quarter of the
    scenario's size). The move re-baselines the coater's levels and residuals, but the zone's deviation
    from its own, unmoved setpoint keeps its reference and alarms once the move has settled."""
    moves = [
        SetpointWrite(3000.0, "coater1.web_speed_setpoint", 2.0 * 1.05),
        SetpointWrite(3000.0, "coater1.pump_flow_setpoint", 79.28 * 1.05),
    ]
    fault = get_scenario("dryer-zone-fault").delayed(3060.0).scaled(0.25)
    run = record(fault, 6, 3 * HOUR, setpoints=moves)
    model = LineModel(calibration_s=2700.0)
    found = [f for f in alarms(replay(model, run.process)) if f.machine == "coater1"]
    assert model.steps["coater1"].moved_ns > 0, "the move was seen"
    assert [f.cause for f in found][:1] == ["dryer_zone_fault"], found


def test_a_declared_lot_rebaselines_the_levels_it_moves_with_or_without_an_on_delay() -> None:
    """The lot is recognised from its lab value's second reading, before a chart has seen enough of the
    new material: no alarm, with or without an on-delay."""
    process = _with_lot_from(1.2)
    plain = LineModel(calibration_s=2700.0)
    assert [f for f in alarms(replay(plain, process)) if f.machine == "coater1"] == []
    assert abs(plain.steps["coater1"].moved_ns - _at(process, 1.2).value) <= 2e9
    model = LineModel(calibration_s=2700.0, on_delay_s=60.0)
    found = [f for f in alarms(replay(model, process)) if f.machine == "coater1"]
    assert found == []
    assert abs(model.steps["coater1"].moved_ns - _at(process, 1.2).value) < 120e9


def test_the_halls_day_is_learnt_from_its_measured_air_and_alarms_without_it() -> None:
    """The realistic pilot line: the hall's day moves dryer zone 2 and the calender roll by up to 1 K.
    Calibrated for six hours, the twin learns how they follow the measured hall air and stays quiet; with
    the hall's sensors unread, zone 2's drift with the day is an alarm within the hour."""
    run = record("nominal", 7, 7 * HOUR, realistic=True)
    hall = ["coater1.ambient_temperature", "calender1.ambient_temperature"]
    learnt = LineModel(calibration_s=6 * HOUR)
    heat = {"dryer_zone2_temperature", "roll_temperature"}
    assert [f for f in alarms(replay(learnt, run.process)) if f.signal in heat] == []
    assert learnt.steps["coater1"].ml["dryer_zone2_deviation"].active
    blind = LineModel(calibration_s=6 * HOUR)
    found = alarms(replay(blind, run.process.drop(columns=hall)))
    assert "dryer_zone2_temperature" in {f.signal for f in found if f.machine == "coater1"}


def test_a_lot_declared_in_calibrations_last_minute_is_rebaselined_not_judged_against_the_old_lot() -> None:
    """A new lot arrives 36 s before calibration ends: its levels are no part of the calibration, and
    the first values judged must not be charted against the previous lot's level."""
    process = _with_lot_from(0.74)
    model = LineModel(calibration_s=2700.0)
    assert [f for f in alarms(replay(model, process)) if f.machine == "coater1"] == []
    assert abs(model.steps["coater1"].moved_ns - _at(process, 0.74).value) <= 5e9
