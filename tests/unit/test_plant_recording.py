"""The offline recorder: repeatable tables, genealogy, files, setpoints, the CLI and the docs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from plant.line import PilotLine, SetpointError
from plant.recording import record
from plant.scenarios import SCENARIOS, get_scenario
from plant.signals import SIGNALS, browse_name

DOCS = Path(__file__).resolve().parents[2] / "docs" / "address-space.md"


def test_same_seed_and_scenario_give_identical_data() -> None:
    a = record("solids-drift", 11, 3000)
    b = record("solids-drift", 11, 3000)
    pd.testing.assert_frame_equal(a.process, b.process)
    pd.testing.assert_frame_equal(a.cells, b.cells)
    pd.testing.assert_frame_equal(a.ocv, b.ocv)
    other = record("solids-drift", 12, 3000)
    assert not a.process["coater1.dry_loading"].equals(other.process["coater1.dry_loading"])


def test_process_table_has_a_column_and_unit_for_every_signal() -> None:
    recording = record("nominal", 1, 120)
    p = recording.process
    assert len(p) == 120
    assert p.index.tz is not None
    assert (p.index[1:] - p.index[:-1] == pd.Timedelta(seconds=1)).all()
    for signal in SIGNALS:
        assert signal.column in p.columns
        assert recording.units[signal.column] == signal.unit
    for column in (
        "coater1.roll_id",
        "calender1.roll_id",
        "coater1.roll_position",
        "calender1.roll_position",
    ):
        assert column in p.columns


def test_cells_trace_back_to_the_calendered_roll_and_position() -> None:
    recording = record("nominal", 3, 3 * 3600)
    p = recording.process
    cells = recording.cells
    assert len(cells) > 50
    for cell in cells.head(40).itertuples():
        at_start = p.loc[p.index >= cell.formation_start].iloc[0]
        assert cell.cathode_roll_id == at_start["calender1.roll_id"]
        assert cell.position_m == pytest.approx(at_start["calender1.roll_position"], abs=0.1)
    # rolls flow from coater to calender: every calendered roll was coated first (or was in the web at start)
    coated = set(p["coater1.roll_id"])
    assert set(p["calender1.roll_id"]) <= coated | {"CAT-00000"}
    assert len(coated) >= 2


def test_loading_drift_reaches_the_cells_built_from_it() -> None:
    drift = record("pump-wear", 5, 6 * 3600).cells
    nominal = record("nominal", 5, 6 * 3600).cells
    late = slice(-48, None)
    ratio = drift["discharge_capacity"].iloc[late].mean() / nominal["discharge_capacity"].iloc[late].mean()
    assert ratio < 0.985


def test_more_pump_flow_coats_more_loading() -> None:
    line = PilotLine(get_scenario("nominal"), 1)
    before = sum(line.step(1.0).values["coater1.dry_loading"] for _ in range(60)) / 60
    line.write_setpoint("coater1.pump_flow_setpoint", line.setpoints["coater1.pump_flow_setpoint"] * 1.1)
    after = sum(line.step(1.0).values["coater1.dry_loading"] for _ in range(60)) / 60
    assert after / before == pytest.approx(1.1, abs=0.01)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("coater1.pump_flow_setpoint", 500.0),
        ("coater1.pump_flow_setpoint", float("nan")),
        ("coater1.pump_flow", 1.0),
    ],
)
def test_setpoints_outside_their_range_are_refused(column: str, value: float) -> None:
    line = PilotLine(get_scenario("nominal"), 1)
    before = dict(line.setpoints)
    with pytest.raises(SetpointError):
        line.write_setpoint(column, value)
    assert line.setpoints == before


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_twin_sim_record_writes_the_tables(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"run{suffix}"
    result = CliRunner().invoke(
        app,
        ["sim", "--record", str(target), "--duration", "1800", "--scenario", "micro-short", "--seed", "4"],
    )
    assert result.exit_code == 0, result.output
    expected = record("micro-short", 4, 1800)
    if suffix == ".csv":
        process = pd.read_csv(target, index_col=0)
        cells = pd.read_csv(tmp_path / "run.cells.csv")
    else:
        process = pd.read_parquet(target)
        cells = pd.read_parquet(tmp_path / "run.cells.parquet")
    assert len(process) == 1800
    assert process["coater1.dry_loading"].to_numpy() == pytest.approx(expected.process["coater1.dry_loading"])
    assert list(cells["cell_id"]) == list(expected.cells["cell_id"])
    units = json.loads((tmp_path / "run.units.json").read_text())
    assert units["coater1.dry_loading"] == "mg/cm2"
    assert (tmp_path / "run.ground_truth.jsonl").read_text() == ""


def test_twin_sim_lists_every_scenario() -> None:
    result = CliRunner().invoke(app, ["sim", "--list-scenarios"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    for name in SCENARIOS:
        assert name in result.output


def test_unknown_scenario_is_a_clean_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sim", "--scenario", "pump-explodes", "--record", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 2
    assert "unknown scenario 'pump-explodes'" in result.output
    assert "Traceback" not in result.output


def test_docs_list_every_node_signal_and_scenario() -> None:
    text = DOCS.read_text()
    for signal in SIGNALS:
        assert f"`{signal.column}`" in text
        assert browse_name(signal.name) in text
    for name in SCENARIOS:
        assert f"`{name}`" in text


def test_invalid_payload_flag_is_a_clean_error() -> None:
    result = CliRunner().invoke(app, ["sim", "--payload", "xml", "--duration", "10"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
