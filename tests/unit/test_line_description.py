"""A line is described in a file: it loads with its steps in flow order, and a mistake names file, line
and field before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import linedesc
from core.errors import ConfigError

SMALL = """
site = "s"
area = "a"
line = "l"

[[steps]]
id = "coater7"
kind = "slot_die_coater"

[[steps.signals]]
name = "pump_flow"
unit = "mL/min"

[[steps.signals]]
name = "coat_weight"
unit = "{unit}"
spec_low = 190.0
spec_high = 210.0

[[steps]]
id = "press2"
kind = "dry_electrode_press"

[[steps.signals]]
name = "gap_setpoint"
unit = "um"
setpoint = {{ low = 50.0, high = 400.0, input = "roll_gap" }}

[[flow]]
source = "coater7"
target = "{target}"
"""


def _write(tmp_path: Path, unit: str = "g/m2", target: str = "press2") -> Path:
    path = tmp_path / "line.toml"
    path.write_text(SMALL.format(unit=unit, target=target))
    return path


def test_the_simulated_line_ships_as_a_description() -> None:
    described = linedesc.load()
    assert [s.id for s in described.steps] == ["coater1", "calender1", "cycler1"]
    assert [(f.source, f.target) for f in described.flow] == [
        ("coater1", "calender1"),
        ("calender1", "cycler1"),
    ]
    step, signal = described.setpoints()["line_load"]
    assert (step.id, signal.name, signal.setpoint and signal.setpoint.high) == (
        "calender1",
        "line_load_setpoint",
        2000,
    )


def test_a_described_line_loads_with_its_steps_signals_and_setpoints(tmp_path: Path) -> None:
    described = linedesc.load(_write(tmp_path))
    press = described.step("press2")
    assert press is not None and press.kind == "dry_electrode_press"
    signal = press.signal("gap_setpoint")
    assert signal is not None and signal.role == "gap_setpoint"
    assert list(described.setpoints()) == ["roll_gap"]


def test_an_unreadable_unit_names_the_file_line_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, unit="bogons per fortnight")
    with pytest.raises(
        ConfigError, match=r"line.toml, line 16, field steps.0.signals.1.unit: .*unknown unit"
    ):
        linedesc.load(path)


def test_material_flow_to_a_step_the_line_lacks_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="flow names steps the line does not have: furnace1"):
        linedesc.load(_write(tmp_path, target="furnace1"))
