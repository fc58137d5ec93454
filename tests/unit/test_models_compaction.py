"""The calender model identifies the whole compaction law from a line-load trial, and only then.

The plant is the harness: the tests read its hidden parameters to judge the fit, the model never does.
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest

from core.records import Parameter
from models.compaction import identify
from models.line import LineModel
from models.physics import SWEEP_SAMPLES, CalenderModel
from models.replay import replay
from models.rootcause import Finding
from plant.line import EPS_MIN, PilotLine
from plant.recording import record
from plant.scenarios import get_scenario
from plant.trials import calender_trial

SEEDS = (1, 4, 7)


@cache
def _run(seed: int, trial: bool, duration_s: float = 2800.0) -> tuple[LineModel, list[Finding]]:
    recording = record("nominal", seed, duration_s, setpoints=calender_trial() if trial else ())
    model = LineModel()
    return model, replay(model, recording.process)


def _calender(model: LineModel) -> dict[str, Parameter]:
    return {e.name: e for e in model.parameters() if e.machine == "calender1"}


@pytest.mark.parametrize("seed", SEEDS)
def test_a_calender_trial_identifies_eps_0_eps_min_and_gamma_near_the_hidden_truth(seed: int) -> None:
    model, _ = _run(seed, True)
    hidden = PilotLine(get_scenario("nominal"), seed).hidden
    p = _calender(model)
    assert model.steps["calender1"].calender.compaction_status.startswith("identified")
    assert p["porosity_as_coated"].source == p["porosity_limit"].source == "data"
    # as-coated porosity within 0.5 points, dense limit within 0.5 points, γ_ref within 2 %
    assert p["porosity_as_coated"].value == pytest.approx(100 * hidden.eps_0, abs=0.5)
    assert p["porosity_limit"].value == pytest.approx(100 * EPS_MIN, abs=0.5)
    assert p["compaction_resistance"].value == pytest.approx(hidden.gamma_ref, rel=0.02)


def test_at_one_line_load_the_priors_stay_and_the_status_says_why() -> None:
    model, _ = _run(4, False)
    p = _calender(model)
    assert model.steps["calender1"].calender.compaction_status.startswith("prior: line load spans")
    assert (p["porosity_as_coated"].value, p["porosity_limit"].value) == (50.0, 15.0)
    assert p["porosity_as_coated"].source == p["porosity_limit"].source == "prior"


def test_production_after_the_trial_raises_nothing_on_the_calender() -> None:
    _, findings = _run(4, True, 2.5 * 3600)
    assert [f for f in findings if f.machine == "calender1"] == []


def test_the_identified_law_predicts_porosity_away_from_the_recipe_line_load() -> None:
    identified, _ = _run(4, True)
    prior, _ = _run(4, False)
    hidden = PilotLine(get_scenario("nominal"), 4).hidden
    values = {"line_load": 1600.0, "roll_temperature": 50.0, "incoming_loading": 20.0}
    truth = 100 * (EPS_MIN + (hidden.eps_0 - EPS_MIN) * math.exp(-1600.0 / hidden.gamma_ref))
    porosity = {m: m.steps["calender1"].calender.predict(values)["porosity"][0] for m in (identified, prior)}
    assert porosity[identified] == pytest.approx(truth, abs=0.3)
    assert abs(porosity[prior] - truth) > 1.0


def test_beta_joins_the_fit_when_the_roll_temperature_moves_too() -> None:
    rng = np.random.default_rng(0)
    load = np.repeat([150.0, 400.0, 800.0, 1400.0, 2000.0], 400)
    temperature = rng.choice([40.0, 60.0], load.size)
    gamma = 700 * np.exp(-0.012 * (temperature - 50))
    eps = 0.19 + 0.30 * np.exp(-load / gamma) + rng.normal(0, 0.002, load.size)
    fit, status = identify(load, temperature, eps, 50.0, 0.0, 0.03)
    assert fit is not None, status
    assert (fit.eps_0, fit.eps_min, fit.beta) == pytest.approx((0.49, 0.19, 0.012), abs=0.002)
    assert math.exp(fit.log_gamma_ref) == pytest.approx(700, rel=0.01)
    assert np.all(np.abs([fit.eps_0 - 0.49, fit.eps_min - 0.19]) < 5 * fit.sigmas[:2])


def test_a_sweep_too_light_to_reach_the_dense_limit_keeps_the_priors() -> None:
    rng = np.random.default_rng(1)
    load = np.repeat([100.0, 250.0, 400.0], 300)
    eps = 0.20 + 0.28 * np.exp(-load / 5000.0) + rng.normal(0, 0.002, load.size)
    fit, status = identify(load, np.full(load.size, 50.0), eps, 50.0, 0.0, 0.03)
    assert fit is None and status.startswith("prior: line loads")


def test_a_trial_at_the_start_of_a_long_calibration_stays_in_the_bounded_buffer() -> None:
    rng = np.random.default_rng(2)
    trial = np.repeat([150.0, 500.0, 1000.0, 2000.0], 300)
    loads = np.concatenate([trial, np.full(3 * SWEEP_SAMPLES, 800.0)]) + rng.normal(0, 2, trial.size + 60_000)
    model = CalenderModel()
    for load in loads:
        eps = 0.20 + 0.28 * math.exp(-load / 780.0) + rng.normal(0, 0.002)
        thickness = 10 * 20.0 / (4.4 * (1 - eps))
        model.calibrate(
            {"line_load": load, "roll_temperature": 50.0, "incoming_loading": 20.0, "porosity": 100 * eps}
            | {"thickness": thickness}
        )
    assert len(model.samples) <= SWEEP_SAMPLES
    model.identify()
    assert model.compaction_status.startswith("identified"), model.compaction_status
    assert model.fit is not None and model.fit.eps_min == pytest.approx(0.20, abs=0.005)


def test_an_identified_calender_survives_a_json_snapshot() -> None:
    model, _ = _run(4, True)
    restored = CalenderModel("calender1")
    restored.load(json.loads(json.dumps(model.steps["calender1"].calender.state())))
    values = {"line_load": 1200.0, "roll_temperature": 55.0, "incoming_loading": 20.0}
    assert restored.predict(values) == model.steps["calender1"].calender.predict(values)
    assert restored.parameters() == model.steps["calender1"].calender.parameters()
