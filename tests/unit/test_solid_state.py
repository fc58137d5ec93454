"""The solid-state line (``lines/solid-state.toml``, simulated by ``plant/solidstate.py``): its step models
calibrate to the simulator's hidden parameters within stated tolerances, and each seeded fault is caught
with its cause. The plant is the harness here: the test reads its hidden parameters, the models never do.
"""

from __future__ import annotations

import math
from functools import cache

import pandas as pd
import pytest

from core import linedesc
from models.line import LineModel
from models.replay import replay
from models.rootcause import Finding
from models.whatif import WhatIf
from plant import solidstate
from plant.scenarios import WINDOW_S
from plant.solidstate import SCENARIOS, SolidStateRecording, furnace_trial, record

LINE = linedesc.load(linedesc.builtin_path("solid-state"))
SEED = 11
EXPECTED = {
    "press-feed-drift": ("press1", "feed_drift", "powder_feed"),
    "press-roll-heating": ("press1", "press_roll_heating", "roll_temperature"),
    "furnace-zone-drift": ("furnace1", "furnace_zone_fault", "zone3_temperature"),
    "furnace-atmosphere-leak": ("furnace1", "atmosphere_leak", "o2"),
    "furnace-thermocouple-bias": ("furnace1", "thermocouple_drift", "relative_density"),
}


@cache
def _run(scenario: str) -> tuple[LineModel, list[Finding], SolidStateRecording]:
    recording = record(scenario, SEED, 4.5 * 3600)
    model = LineModel(LINE.line, description=LINE)
    return model, replay(model, recording.process), recording


@cache
def _trial() -> tuple[LineModel, SolidStateRecording]:
    """The furnace calibrated across a trial of zone 3 and belt steps (``furnace_trial``)."""
    recording = record("nominal", SEED, 1.5 * 3600, setpoints=furnace_trial())
    model = LineModel(LINE.line, description=LINE, calibration_s=3700)
    replay(model, recording.process)
    return model, recording


def _parameters(model: LineModel, machine: str) -> dict[str, float]:
    return {p.name: p.value for p in model.parameters() if p.machine == machine}


def test_every_step_of_the_solid_state_line_runs_its_kinds_model() -> None:
    model = LineModel(LINE.line, description=LINE)
    assert not model.unmodelled
    assert [type(s).kind for s in model.steps.values()] == ["dry_electrode_press", "sintering_furnace"]


def test_the_press_calibrates_to_the_plants_feeder_and_film_within_tolerance() -> None:
    model, _, recording = _run("nominal")
    hidden = recording.hidden
    press = _parameters(model, "press1")
    assert press["feeder_efficiency"] == pytest.approx(hidden.feed_efficiency, abs=0.002)
    density = hidden.rho_true * solidstate.heckel_density(1500.0, hidden.heckel_k, hidden.heckel_a)
    assert press["film_density"] == pytest.approx(density, rel=0.005)
    # at one operating point the gauge's offset and the mass balance's gain are collinear: together they
    # give the loading the gauge reads, which is what the features are judged against
    feed = solidstate.RECIPE["press1.powder_feed_setpoint"] * hidden.feed_efficiency
    balance = solidstate.areal_loading(
        feed, solidstate.FILM_WIDTH_MM, solidstate.RECIPE["press1.line_speed_setpoint"]
    )
    reads = press["mass_balance_gain"] * balance + press["gauge_offset"]
    assert reads == pytest.approx(balance + hidden.gauge_offset, abs=0.01)


def test_a_furnace_trial_identifies_the_activation_energy_and_the_density_it_predicts_holds() -> None:
    model, recording = _trial()
    hidden = recording.hidden
    furnace = _parameters(model, "furnace1")
    assert furnace["activation_energy"] == pytest.approx(hidden.activation_kj, rel=0.05)
    whatif = WhatIf(model)
    zones = (600.0, 1100.0, 1185.0)
    answer = whatif.predict({"zone3_temperature": 1185.0, "belt_speed": 45.0})
    predicted = next(p for p in answer.predictions if p.quantity == "relative_density")
    theta = solidstate.work_of_sintering(zones, 45.0, hidden.activation_kj)
    truth = 100 * solidstate.msc_density(theta, hidden.msc_centre, hidden.msc_width, hidden.max_density)
    assert abs(predicted.value - truth) < max(3 * predicted.sigma, 0.2), (predicted, truth)
    assert predicted.unit == "%"


def test_without_a_trial_the_furnace_keeps_its_priors_and_says_so() -> None:
    model, _, _ = _run("nominal")
    sources = {p.name: p.source for p in model.parameters() if p.machine == "furnace1"}
    assert sources["activation_energy"] == "prior" and sources["density_at_recipe"] == "data"


def test_a_nominal_run_raises_nothing() -> None:
    _, findings, _ = _run("nominal")
    assert findings == []


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_each_seeded_fault_is_caught_with_its_cause(scenario: str) -> None:
    machine, cause, signal = EXPECTED[scenario]
    _, findings, recording = _run(scenario)
    onset = pd.Timestamp(recording.ground_truth[0]["onset"]).value
    assert all(f.time_ns >= onset for f in findings), "nothing before the onset"
    assert findings, "the fault is caught"
    first = findings[0]
    assert (first.machine, first.cause, first.signal) == (machine, cause, signal), first
    assert first.time_ns - onset < 3600e9, "within an hour"
    assert first.title and first.action


@pytest.mark.parametrize(
    ("fault", "expectation"),
    [
        pytest.param(f, e, id=f"{f.name}:{e.signal}")
        for s in SCENARIOS.values()
        for f in s.faults
        for e in f.expected
    ],
)
def test_each_fault_moves_its_signal_by_the_documented_amount(fault: object, expectation: object) -> None:
    assert isinstance(fault, solidstate.Fault) and isinstance(expectation, solidstate.Expectation)
    process = record(fault.name, SEED, fault.settled_s + WINDOW_S).process
    t = (process.index - process.index[0]).total_seconds() + 1
    before = process.loc[(t > fault.onset_s - WINDOW_S) & (t <= fault.onset_s), expectation.signal].mean()
    after = process.loc[t > fault.settled_s, expectation.signal].mean()
    change = (after - before) / before if expectation.relative else after - before
    assert change == pytest.approx(expectation.change, abs=expectation.tolerance)
    assert math.isfinite(change)
