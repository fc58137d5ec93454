"""A vendor's two-coater line that no code names (``lines/two-coater.toml``): other step ids, other signal
names, other units. ``plant.dressed`` simulates it from two pilot lines (anode and cathode, each its own
seed) in the vendor's names and units; the line model built from the file alone calibrates every step and
names the vendor's signal when the anode pump wears.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest

from core import linedesc
from models.line import LineModel
from models.replay import replay
from models.rootcause import Finding
from models.whatif import WhatIf
from plant.dressed import DressedRun, record_line

VENDOR = linedesc.load(linedesc.builtin_path("two-coater"))
DURATION_S = 4.5 * 3600


@cache
def _run() -> tuple[LineModel, list[Finding], DressedRun]:
    run = record_line("pump-wear", 5, DURATION_S)
    model = LineModel(VENDOR.line, description=VENDOR)
    return model, replay(model, run.process, run.cells), run


def test_every_step_of_the_vendor_line_runs_its_kinds_model_and_calibrates() -> None:
    model, _, _ = _run()
    assert not model.unmodelled
    assert model.calibrated == dict.fromkeys([s.id for s in VENDOR.steps], True)
    efficiency = {e.machine: e.value for e in model.parameters() if e.name == "pump_efficiency"}
    assert set(efficiency) == {"anode_coater", "cathode_coater"}
    assert efficiency["cathode_coater"] == pytest.approx(0.975, abs=0.005), "cm³/s was converted"


def test_the_anode_pump_wear_is_found_on_the_anode_coater_under_the_vendors_signal_name() -> None:
    _, findings, run = _run()
    onset = pd.Timestamp(run.ground_truth[0]["onset"])
    assert run.ground_truth[0]["machine"] == "anode_coater"
    assert "anode_coater.pump_flow_rate" in run.ground_truth[0]["signals"]
    assert not [f for f in findings if f.time_ns < onset.value], "no alarm before the onset"
    first = findings[0]
    assert (first.machine, first.cause, first.signal) == ("anode_coater", "pump_wear", "pump_flow_rate")
    # the cathode line's own rate of false alarms is the detection bench's business; the wear is not its
    assert not [f for f in findings if f.machine.startswith("cathode") and f.cause == "pump_wear"]


def test_predictions_and_what_if_speak_the_vendors_units_and_qualified_names() -> None:
    model, _, _ = _run()
    answer = WhatIf(model).predict({})
    values = answer.values()
    units_of = {p.quantity: p.unit for p in answer.predictions}
    assert units_of["cathode_coater.dry_loading"] == "g/m2"
    assert values["cathode_coater.dry_loading"] == pytest.approx(200.0, rel=0.02)  # 20 mg/cm² coated
    assert units_of["cell_capacity"] == "mA.h"
    formed = _run()[2].cells["discharge_capacity"].median()
    assert values["cell_capacity"] == pytest.approx(formed, rel=0.03)
    assert 28.0 < values["cathode_calender.porosity"] < 32.0
    more = WhatIf(model).predict(
        {"cathode_coater.pump_flow": 1.05 * WhatIf(model).base["cathode_coater.pump_flow"]}
    )
    assert more.values()["cathode_coater.dry_loading"] == pytest.approx(
        1.05 * values["cathode_coater.dry_loading"], rel=0.01
    )
    assert more.values()["cell_capacity"] > values["cell_capacity"], "capacity follows the cathode's loading"
    assert more.values()["anode_coater.dry_loading"] == values["anode_coater.dry_loading"]
