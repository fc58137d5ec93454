"""A vendor's two-coater line that no code names (``lines/two-coater.toml``): other step ids, other signal
names, other units. The simulated plant's recordings are dressed as that line (the anode line from one
run, the cathode line and the cells from another), converted into the vendor's units; the line model
built from the file alone calibrates every step and names the vendor's signal when the anode pump wears.
"""

from __future__ import annotations

from functools import cache

import pandas as pd
import pytest

from core import linedesc, units
from core.linedesc import LineDescription
from models.line import LineModel
from models.replay import replay
from models.rootcause import Finding
from models.whatif import WhatIf
from plant.recording import Recording, record
from plant.scenarios import get_scenario

VENDOR = linedesc.load(linedesc.builtin_path("two-coater"))
PILOT = linedesc.load()
DURATION_S = 4.5 * 3600


def _dressed(
    frame: pd.DataFrame, machine: str, step_id: str, line: LineDescription, prefix: str
) -> pd.DataFrame:
    """``machine``'s columns of a recording as ``step_id`` of ``line``: renamed by role, converted."""
    step, source = line.step(step_id), PILOT.step(machine)
    assert step is not None and source is not None
    columns = {}
    for signal in step.signals:
        plant = source.signal(signal.role or signal.name)
        column = f"{machine}.{signal.role}"
        if column in frame:
            unit = plant.unit if plant is not None else signal.unit
            columns[f"{step_id}.{signal.name}"] = frame[column] * units.converter(unit, signal.unit).scale
    columns[f"{step_id}.roll_id"] = prefix + frame[f"{machine}.roll_id"].astype(str)
    return pd.DataFrame(columns, index=frame.index)


@cache
def _run() -> tuple[LineModel, list[Finding], Recording]:
    anode = record("pump-wear", 5, DURATION_S)
    cathode = record("nominal", 6, DURATION_S)
    frame = pd.concat(
        [
            _dressed(anode.process, "coater1", "anode_coater", VENDOR, "AN-"),
            _dressed(anode.process, "calender1", "anode_calender", VENDOR, "AN-"),
            _dressed(cathode.process, "coater1", "cathode_coater", VENDOR, ""),
            _dressed(cathode.process, "calender1", "cathode_calender", VENDOR, ""),
        ],
        axis=1,
    )
    mah = units.converter("Ah", "mA.h").scale
    cells = cathode.cells.assign(
        charge_capacity=cathode.cells["charge_capacity"] * mah,
        discharge_capacity=cathode.cells["discharge_capacity"] * mah,
    )
    model = LineModel(VENDOR.line, description=VENDOR)
    return model, replay(model, frame, cells), anode


def test_every_step_of_the_vendor_line_runs_its_kinds_model_and_calibrates() -> None:
    model, _, _ = _run()
    assert not model.unmodelled
    assert model.calibrated == dict.fromkeys([s.id for s in VENDOR.steps], True)
    efficiency = {e.machine: e.value for e in model.parameters() if e.name == "pump_efficiency"}
    assert set(efficiency) == {"anode_coater", "cathode_coater"}
    assert efficiency["cathode_coater"] == pytest.approx(0.975, abs=0.005), "cm³/s was converted"


def test_the_anode_pump_wear_is_found_on_the_anode_coater_under_the_vendors_signal_name() -> None:
    _, findings, anode = _run()
    onset = pd.Timestamp(
        get_scenario("pump-wear").faults[0].ground_truth("pump-wear", anode.process.index[0])["onset"]
    )
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
    formed = record("nominal", 6, DURATION_S).cells["discharge_capacity"].median()
    assert values["cell_capacity"] == pytest.approx(1000 * formed, rel=0.03)
    assert 28.0 < values["cathode_calender.porosity"] < 32.0
    more = WhatIf(model).predict(
        {"cathode_coater.pump_flow": 1.05 * WhatIf(model).base["cathode_coater.pump_flow"]}
    )
    assert more.values()["cathode_coater.dry_loading"] == pytest.approx(
        1.05 * values["cathode_coater.dry_loading"], rel=0.01
    )
    assert more.values()["cell_capacity"] > values["cell_capacity"], "capacity follows the cathode's loading"
    assert more.values()["anode_coater.dry_loading"] == values["anode_coater.dry_loading"]
