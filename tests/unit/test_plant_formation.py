"""Formation cyclers: the CC-CV program, channel calibration, K-value, Sparkplug aliases."""

from __future__ import annotations

import numpy as np
import pytest

from core import linedesc
from plant.cyclers import DEVICE_METRICS, SparkplugCyclers, naming
from plant.formation import (
    AGING_DAYS,
    STEP_CC_CHARGE,
    STEP_CC_DISCHARGE,
    STEP_CV_CHARGE,
    STEP_REST,
    Cell,
    Material,
    k_value,
    sample,
)


def _cell(calibration: float = 1.0) -> Cell:
    cell = Cell(
        cell_id="CELL-000001",
        channel="ch01",
        material=Material("CAT-00001", 12.5, 20.0),
        start_s=100.0,
        capacity_ah=1.5,
        efficiency=0.88,
        k_mv_per_day=0.8,
        micro_short=False,
        calibration=calibration,
        ocv0=3.7,
    )
    cell.plan()
    return cell


def test_formation_runs_cc_cv_rest_discharge_in_order() -> None:
    cell = _cell()
    rng = np.random.default_rng(0)
    times = np.linspace(cell.start_s, cell.end_s - 1e-6, 2000)
    readings = [sample(cell, float(t), rng) for t in times]
    steps = [r.step for r in readings]
    assert steps == sorted(steps)
    assert set(steps) == {STEP_CC_CHARGE, STEP_CV_CHARGE, STEP_REST, STEP_CC_DISCHARGE}
    assert all(2.9 < r.voltage < 4.3 for r in readings)
    charged = max(r.capacity for r in readings if r.step == STEP_CV_CHARGE)
    discharged = max(r.capacity for r in readings if r.step == STEP_CC_DISCHARGE)
    assert charged == pytest.approx(cell.charge_capacity, rel=1e-3)
    assert discharged == pytest.approx(cell.discharge_capacity, rel=1e-3)
    assert all(r.current < 0 for r in readings if r.step == STEP_CC_DISCHARGE)


def test_a_miscalibrated_channel_reports_more_capacity_and_runs_longer() -> None:
    nominal, offset = _cell(1.0), _cell(1.03)
    assert offset.discharge_capacity / nominal.discharge_capacity == pytest.approx(1.03)
    assert offset.end_s > nominal.end_s
    rng = np.random.default_rng(0)
    reported = sample(offset, offset.start_s + 60, rng).current
    assert reported == pytest.approx(0.3, abs=0.002), "the channel regulates its own reading to C/5"


@pytest.mark.parametrize("k", [0.5, 0.8, 7.0])
def test_k_value_is_the_ocv_loss_per_day(k: float) -> None:
    readings = [3.7 - k * day / 1000 for day in AGING_DAYS]
    assert k_value(readings) == pytest.approx(k)


def test_sparkplug_aliases_are_unique_per_edge_node() -> None:
    channels = [f"ch{k:02d}" for k in range(1, 65)]
    aliases = [SparkplugCyclers.alias(ch, name) for ch in channels for name, _ in DEVICE_METRICS]
    assert len(set(aliases)) == len(aliases)


def test_described_cyclers_send_the_formation_steps_names_and_units_only() -> None:
    names = naming(linedesc.load(linedesc.builtin_path("two-coater")), "cell_formation")
    sent = names.dress({"cell_id": "C1", "discharge_capacity": 2.5, "position_m": 12.0, "voltage": 3.7})
    assert sent == {"cell_id": "C1", "discharge_capacity": pytest.approx(2500.0), "sheet_position": 12.0}
    pilot = naming(linedesc.load(), "cycler1")
    assert pilot.dress({"voltage": 3.7, "k_value": 1.2}) == {"voltage": 3.7, "k_value": 1.2}
