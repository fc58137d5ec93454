"""One suite over every step model: built from a description, resumed from JSON, and the generic step for
a kind nobody modelled (River's ``checks`` idea: the same checks for each plug-in)."""

from __future__ import annotations

import json
from functools import cache

import pandas as pd
import pytest

from core import linedesc
from core.errors import ConfigError
from core.linedesc import LineDescription
from models.line import LineModel
from models.replay import alarms, events, feed, replay
from models.steps import kinds, model_class
from models.steps.generic import GenericStep
from plant import solidstate
from plant.recording import Recording, record
from plant.scenarios import get_scenario

PILOT = linedesc.load()


def _with_kind(step_id: str, kind: str) -> LineDescription:
    data = PILOT.model_dump()
    for step in data["steps"]:
        if step["id"] == step_id:
            step["kind"] = kind
    return LineDescription.model_validate(data)


@cache
def _recording(scenario: str) -> Recording:
    return record(scenario, 3, 3 * 3600)


def test_every_kind_of_a_shipped_line_has_its_own_model() -> None:
    shipped = [linedesc.load(linedesc.builtin_path(n)) for n in ("pilot-nmc", "two-coater", "solid-state")]
    assert {s.kind for line in shipped for s in line.steps} <= set(kinds())
    assert model_class("isostatic_press") is GenericStep


@pytest.mark.parametrize("kind", [*sorted({s.kind for s in PILOT.steps}), "isostatic_press"])
def test_a_step_model_resumes_from_a_json_snapshot_as_if_it_never_stopped(kind: str) -> None:
    description = _with_kind("calender1", kind) if kind == "isostatic_press" else PILOT
    rec = record("micro-short" if kind == "formation" else "load-cell-bias", 2, 3 * 3600)
    stream = list(events(rec.process, rec.cells))
    straight = LineModel(description=description, calibration_s=1800, calibration_cells=24)
    expected = feed(straight, stream)
    resumed = LineModel(description=description, calibration_s=1800, calibration_cells=24)
    found = feed(resumed, stream[: len(stream) // 2])
    resumed = LineModel.restore(json.loads(json.dumps(resumed.snapshot())), description)
    found += feed(resumed, stream[len(stream) // 2 :])
    assert [(f.key, f.onset_ns) for f in found] == [(f.key, f.onset_ns) for f in expected]
    machine = next(s.id for s in description.steps if s.kind == kind)
    assert resumed.steps[machine].calibrated
    after = resumed.statistics()
    mine = {k: v for k, v in straight.statistics().items() if k.startswith(f"{machine}.")}
    assert mine, "the step runs detectors"
    for key, pair in mine.items():
        assert after[key] == pytest.approx(pair, rel=1e-9)


@pytest.mark.parametrize("scenario", ["press-feed-drift", "furnace-thermocouple-bias"])
def test_the_solid_state_kinds_resume_from_a_json_snapshot_as_if_they_never_stopped(scenario: str) -> None:
    description = linedesc.load(linedesc.builtin_path("solid-state"))
    process = solidstate.record(scenario, 2, 2.5 * 3600).process
    stream = list(events(process))
    straight = LineModel(description=description, calibration_s=1800)
    expected = feed(straight, stream)
    resumed = LineModel(description=description, calibration_s=1800)
    found = feed(resumed, stream[: len(stream) // 2])
    resumed = LineModel.restore(json.loads(json.dumps(resumed.snapshot())), description)
    found += feed(resumed, stream[len(stream) // 2 :])
    assert expected, "the fault is found"
    assert [(f.key, f.onset_ns) for f in found] == [(f.key, f.onset_ns) for f in expected]
    after = resumed.statistics()
    for key, pair in straight.statistics().items():
        assert after[key] == pytest.approx(pair, rel=1e-9)
    assert resumed.parameters() == straight.parameters()


def test_a_snapshot_of_another_layout_is_refused() -> None:
    model = LineModel(calibration_s=600)
    with pytest.raises(ConfigError, match="layout"):
        LineModel.restore(model.snapshot(), _with_kind("calender1", "isostatic_press"))


def test_a_kind_without_a_model_is_monitored_signal_by_signal_and_its_findings_name_the_signal() -> None:
    description = _with_kind("calender1", "isostatic_press")
    scenario = "calender-roll-heating"
    rec = _recording(scenario)
    findings = replay(LineModel(description=description), rec.process)
    truth = get_scenario(scenario).faults[0].ground_truth(scenario, rec.process.index[0])
    onset = pd.Timestamp(truth["onset"])
    on_press = [f for f in findings if f.machine == "calender1"]
    assert on_press and all(f.time_ns >= onset.value for f in on_press), "no alarm before the onset"
    assert on_press[0].cause == "signal_drift"
    assert on_press[0].signal in {"roll_temperature", "thickness", "porosity", "roll_gap"}
    assert on_press[0].title and on_press[0].action


def test_a_step_missing_a_role_its_model_needs_runs_the_generic_monitoring_and_says_why() -> None:
    data = PILOT.model_dump()
    coater = next(s for s in data["steps"] if s["kind"] == "slot_die_coater")
    coater["signals"] = [s for s in coater["signals"] if s["name"] != "slurry_solids"]
    model = LineModel(description=LineDescription.model_validate(data))
    assert isinstance(model.steps["coater1"], GenericStep)
    assert "slurry_solids" in model.unmodelled["coater1"]
    assert not isinstance(model.steps["calender1"], GenericStep)


def test_a_unit_the_kind_cannot_convert_is_an_error_when_the_model_is_built() -> None:
    data = PILOT.model_dump()
    coater = next(s for s in data["steps"] if s["kind"] == "slot_die_coater")
    next(s for s in coater["signals"] if s["name"] == "dry_loading")["unit"] = "N"
    with pytest.raises(ConfigError, match="coater1 dry_loading: cannot convert 'N'"):
        LineModel(description=LineDescription.model_validate(data))


def test_a_rebaselined_step_calibrates_afresh_while_the_others_keep_monitoring() -> None:
    rec = _recording("nominal")
    stream = list(events(rec.process))
    model = LineModel(calibration_s=1800)
    feed(model, stream[: len(stream) // 3])
    assert model.calibrated["coater1"] and model.calibrated["calender1"]
    model.rebaseline("coater1")
    assert not model.calibrated["coater1"] and model.calibrated["calender1"]
    assert model.steps["coater1"] in model.steps["calender1"].spec.upstream, "genealogy follows the new model"
    feed(model, stream[len(stream) // 3 :])
    assert model.calibrated["coater1"], "recalibrated on the fresh in-control data"
    with pytest.raises(ValueError, match="no step"):
        model.rebaseline("oven9")


def test_a_line_on_prewhitened_detectors_resumes_from_a_json_snapshot() -> None:
    rec = record("load-cell-bias", 2, 3 * 3600)
    stream = list(events(rec.process, rec.cells))
    straight = LineModel(calibration_s=1800, calibration_cells=24, detector="arcusum")
    expected = feed(straight, stream)
    resumed = LineModel(calibration_s=1800, calibration_cells=24, detector="arcusum")
    found = feed(resumed, stream[: len(stream) // 2])
    resumed = LineModel.restore(json.loads(json.dumps(resumed.snapshot())), PILOT)
    found += feed(resumed, stream[len(stream) // 2 :])
    assert [(f.key, f.onset_ns) for f in found] == [(f.key, f.onset_ns) for f in expected]
    assert any(f.cause == "load_cell_bias" for f in expected), "the fault is still found"
    after = resumed.statistics()
    for key, pair in straight.statistics().items():
        assert after[key] == pytest.approx(pair, rel=1e-9)


def test_a_coater_drift_and_the_calender_and_formation_alarms_it_causes_are_one_alarm() -> None:
    rec = record("pump-wear", 1, 8 * 3600)
    findings = replay(LineModel(), rec.process, rec.cells)
    assert [a.key for a in alarms(findings)] == ["line1/coater1/pump_flow/pump_wear"], "one cause, one alarm"
    last = findings[-1]
    assert {"calender1.incoming_loading", "cycler1.discharge_capacity"} <= set(last.affected)
    assert "Downstream it also moves calender1.incoming_loading" in last.text
