"""Planned setpoint schedules: the recorder writes them like an operator, within the machine's limits."""

from __future__ import annotations

import pandas as pd
import pytest

from plant.line import RECIPE_SETPOINTS, SetpointError
from plant.recording import record
from plant.trials import LINE_LOAD, TRIAL_DWELL_S, TRIAL_LOADS, calender_trial


def test_a_calender_trial_steps_the_line_load_then_returns_to_the_recipe() -> None:
    duration_s = (len(TRIAL_LOADS) + 1) * TRIAL_DWELL_S
    process = record("nominal", 2, duration_s, setpoints=calender_trial()).process
    step = (process.index - process.index[0]) // pd.Timedelta(seconds=TRIAL_DWELL_S)
    dwell = process[LINE_LOAD].groupby(step)
    assert list(dwell.first()) == [*TRIAL_LOADS, RECIPE_SETPOINTS[LINE_LOAD]]
    assert (dwell.nunique() == 1).all()
    measured = process["calender1.line_load"].groupby(process[LINE_LOAD]).mean()
    assert measured.to_numpy() == pytest.approx(measured.index.to_numpy(), abs=1.0)
    porosity = process["calender1.porosity"].groupby(process[LINE_LOAD], sort=True).mean()
    assert porosity.is_monotonic_decreasing


def test_a_trial_outside_the_machine_range_is_refused() -> None:
    with pytest.raises(SetpointError):
        record("nominal", 2, 600, setpoints=calender_trial(loads=(800.0, 2500.0)))


def test_without_a_schedule_the_recording_is_unchanged() -> None:
    untouched = record("nominal", 3, 600).process
    recipe_only = record("nominal", 3, 600, setpoints=calender_trial(loads=())).process
    pd.testing.assert_frame_equal(untouched, recipe_only)
