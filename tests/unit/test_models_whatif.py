"""What-if answers what it can, says why not for the rest, and its interval holds where it extrapolates.

The plant is the harness: the tests read its hidden parameters to judge the predictions; the models never.
"""

from __future__ import annotations

import math
from functools import cache

import pandas as pd
import pytest

from models.line import LineModel
from models.replay import replay
from models.whatif import WhatIf
from plant import physics
from plant.line import EPS_MIN, GAMMA_BETA, GAMMA_T_REF, PilotLine
from plant.recording import Recording, record
from plant.scenarios import get_scenario

SEED = 3


@cache
def _recording() -> Recording:
    return record("nominal", SEED, 3600)


def _model(process: pd.DataFrame) -> LineModel:
    model = LineModel(calibration_s=1200, calibration_cells=24)
    replay(model, process)
    return model


def test_a_calibrating_calender_leaves_the_coater_predictions_and_says_how_far_it_is() -> None:
    process = _recording().process
    coater_only = process[[c for c in process.columns if c.startswith("coater1.")]]
    answer = WhatIf(_model(coater_only)).predict({})
    assert {p.quantity for p in answer.predictions} == {"dry_loading", "residual_solvent"}
    reasons = {u.quantity: u.reason for u in answer.unavailable}
    assert reasons["porosity"] == reasons["thickness"] == "calender1 model calibrating: 0 of 20 plant minutes"
    assert reasons["cell_capacity"] == "cell model calibrating: 0 of 24 cells"


def test_a_setpoint_never_reported_is_named_and_only_its_quantities_are_missing() -> None:
    process = _recording().process.drop(columns=["calender1.line_load_setpoint"])
    answer = WhatIf(_model(process)).predict({})
    assert "dry_loading" in answer.values()
    reasons = {u.quantity: u.reason for u in answer.unavailable}
    assert reasons["porosity"] == "no value for calender1 line_load_setpoint yet"
    given = WhatIf(_model(process)).predict({"line_load": 850.0})
    assert "porosity" in given.values(), "a setpoint given in the request needs no reported value"


def _truth_porosity(line_load: float, roll_temperature: float) -> float:
    hidden = PilotLine(get_scenario("nominal"), SEED).hidden
    gamma = physics.compaction_resistance(hidden.gamma_ref, roll_temperature, GAMMA_T_REF, GAMMA_BETA)
    return 100 * physics.porosity(line_load, hidden.eps_0, EPS_MIN, gamma)


@pytest.mark.parametrize(("line_load", "roll_temperature"), [(1000.0, 50.0), (650.0, 50.0), (800.0, 65.0)])
def test_an_extrapolated_porosity_is_flagged_and_its_interval_covers_the_plant(
    line_load: float, roll_temperature: float
) -> None:
    whatif = WhatIf(_model(_recording().process))
    at_recipe = {p.quantity: p for p in whatif.predict({}).predictions}["porosity"]
    setpoints = {"line_load": line_load, "roll_temperature": roll_temperature}
    moved = {p.quantity: p for p in whatif.predict(setpoints).predictions}["porosity"]
    assert not at_recipe.extrapolated and moved.extrapolated
    assert moved.sigma_model > 3 * at_recipe.sigma_model, "priors weigh more away from the calibrated load"
    truth = _truth_porosity(line_load, roll_temperature)
    low, high = moved.interval
    assert low <= truth <= high, f"{truth:.2f} outside {low:.2f}..{high:.2f}"
    assert math.isclose(moved.sigma, math.hypot(moved.sigma_model, moved.sigma_noise))
