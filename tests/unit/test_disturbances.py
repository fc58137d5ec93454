"""The simulators' realistic option: a real line's in-control disturbances, and the faults alone as truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from plant import solidstate
from plant.disturbances import Daily, Disturbed, Lots, Moves, Realism, Sensors, Wander
from plant.recording import record


def test_a_wander_is_an_ar1_process_with_its_stated_spread_and_memory() -> None:
    run = Disturbed(Realism(process=(Wander("p", 0.5, 100.0),)), seed=1)
    levels = []
    for t in range(1, 200_001):
        run.advance(float(t))
        levels.append(run.level("p"))
    x = np.array(levels)
    assert abs(x.std() - 0.5) < 0.05
    lag1 = np.corrcoef(x[:-1], x[1:])[0, 1]
    assert abs(lag1 - np.exp(-1 / 100.0)) < 0.01


def test_lots_are_declared_and_ambient_follows_the_day() -> None:
    run = Disturbed(Realism(process=(Lots("s", 0.01, 3600.0), Daily("t", 2.0))), seed=2)
    declared = []
    for t in range(0, 86_400, 60):
        run.advance(float(t))
        declared.append(run.declared("s"))
        assert abs(run.level("t")) <= 2.0
    assert run.lots >= 10 and len(set(declared)) >= 10, "a new lot every hour or so"


def test_operator_moves_stay_within_their_window_and_move_together() -> None:
    run = Disturbed(Realism(moves=(Moves(("a", "b"), 0.05, 600.0),)), seed=3)
    recipe, written = {"a": 2.0, "b": 80.0}, []
    for t in range(0, 36_000, 10):
        run.advance(float(t))
        run.move(recipe, lambda column, value: written.append((column, value)))
    assert len(written) >= 20
    pairs = list(zip(written[::2], written[1::2], strict=True))
    assert all(abs(b / 80.0 - a / 2.0) < 1e-12 for (_, a), (_, b) in pairs), "one factor for both"
    assert all(0.95 <= v / recipe[c] <= 1.05 for c, v in written)


def test_sensors_get_heavy_tails_spikes_frozen_values_and_dropouts_but_setpoints_do_not() -> None:
    sensors = Sensors(spikes_per_day=200.0, frozen_per_day=50.0, dropouts_per_day=50.0)
    run = Disturbed(Realism(sensors=sensors), seed=4)
    rng = np.random.default_rng(0)
    out, setpoints = [], set()
    for t in range(1, 86_401):
        run.advance(float(t))
        values = {"x": float(rng.normal()), "x_setpoint": 5.0}
        run.sense(1.0, values)
        out.append(values["x"])
        setpoints.add(values["x_setpoint"])
    x = pd.Series(out)
    assert setpoints == {5.0}
    assert x.isna().sum() > 500, "dropouts"
    assert (x.diff() == 0).sum() > 1000, "frozen values"
    assert (x.abs() > 6).sum() > 50, "spikes and heavy tails"


def test_a_realistic_nominal_run_has_no_ground_truth_and_the_clean_run_is_unchanged() -> None:
    clean = record("nominal", 5, 1800)
    again = record("nominal", 5, 1800, realistic=False)
    pd.testing.assert_frame_equal(clean.process, again.process)
    real = record("nominal", 5, 4 * 3600, realistic=True)
    assert real.ground_truth == []
    assert real.process["coater1.slurry_solids"].round(1).nunique() > 1, "lots declared"
    assert real.process["coater1.web_speed_setpoint"].nunique() > 1, "the operator moved speed"
    press = solidstate.record("nominal", 5, 4 * 3600, realistic=True)
    measured = press.process.select_dtypes("number")
    assert press.ground_truth == [] and measured.isna().any().sum() >= 3, "some gauges dropped out"
