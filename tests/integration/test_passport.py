"""Passport records and FAIR exports of a real loop (simulator → connectors → twin → InfluxDB, a pump that
wears from the first plant hour), as a user runs ``twin export``: every formed cell's passport names its
roll and position, summarises its own material as an independent query of InfluxDB does, lists the
alerts on that material; the AAS export reads back through BaSyx; the JSON-LD expands with pyld; and a
data export read back by ``twin backtest`` finds what the live twin found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from pyld import jsonld

from core.localservices import Influxd
from core.settings import Settings
from twin import aas
from twin.alerts import AlertStore, open_database
from twin.passport import MATERIAL_HALF_M
from twin.store import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("dashboard-queries")]
#: (machine, cause) of the pilot line's consequential alarms (``StepModel.consequential``)
CONSEQUENCES = {
    ("calender1", "upstream_loading"),
    ("cycler1", "upstream_loading"),
    ("cycler1", "formation_drift"),
}

TWIN = str(Path(sys.executable).with_name("twin"))
LT = "https://w3id.org/linetwin/ns#"
PROCESS_STEPS = ("coater1", "calender1")


def _env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "LINETWIN_LINE": settings.line,
        "LINETWIN_INFLUX__URL": settings.influx.url,
        "LINETWIN_INFLUX__DATABASE": settings.influx.database,
        "LINETWIN_TWIN__STATE_FILE": str(settings.twin.state_file),
        "LINETWIN_MODELS__CALIBRATION_CELLS": str(settings.models.calibration_cells),
    }


def _twin(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [TWIN, *args], capture_output=True, text=True, timeout=300, env=_env(settings), cwd=cwd
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def exported(filled: Settings, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    out = tmp_path_factory.mktemp("passports")
    formats = ["--format", "jsonld", "--format", "aas-json", "--format", "aasx"]
    _twin(filled, out, "export", "passport", "--since", "1970-01-01T00:00:00Z", "--out", str(out), *formats)
    records = [json.loads(p.read_text()) for p in sorted(out.glob("cell-*.jsonld"))]
    return out, records


def _query(influxd: Influxd, settings: Settings, influxql: str) -> list[dict[str, Any]]:
    params = {"db": settings.influx.database, "q": influxql, "epoch": "ns"}
    response = httpx.post(f"{influxd.url}/query", params=params, timeout=30)
    response.raise_for_status()
    return list(response.json()["results"][0].get("series", []))


def _raw(influxd: Influxd, settings: Settings, machine: str, signal: str) -> pd.DataFrame:
    """Every point of one signal, with its roll and quality (time in ns)."""
    series = _query(
        influxd,
        settings,
        f'SELECT "value", "roll_id", "quality" FROM "process" WHERE "line" = \'{settings.line}\' '
        f"AND \"machine\" = '{machine}' AND \"signal\" = '{signal}'",
    )
    return pd.DataFrame(series[0]["values"], columns=series[0]["columns"])


def _material_mean(
    influxd: Influxd, settings: Settings, machine: str, signal: str, roll: str, at: float
) -> float:
    """The mean of the good values while ``machine`` worked on roll ``roll`` within MATERIAL_HALF_M of
    ``at``: from raw points, without the export's own queries."""
    position = _raw(influxd, settings, machine, "roll_position")
    near = position[(position["roll_id"] == roll) & ((position["value"] - at).abs() <= MATERIAL_HALF_M)]
    assert not near.empty, f"{machine} stored no position of roll {roll} near {at} m"
    return _good_mean(influxd, settings, machine, signal, near["time"].min(), near["time"].max())


def _good_mean(
    influxd: Influxd, settings: Settings, machine: str, signal: str, first_ns: int, last_ns: int
) -> float:
    values = _raw(influxd, settings, machine, signal)
    inside = values[values["time"].between(first_ns, last_ns) & (values["quality"] == "good")]
    return float(np.mean(inside["value"]))


def test_every_formed_cell_has_a_passport_of_its_roll_position_and_material(
    exported: tuple[Path, list[dict[str, Any]]], filled: Settings, influxd: Influxd
) -> None:
    _, records = exported
    state = StateStore(open_database(filled.twin.state_file))
    formed = [r for r in records if "dischargeCapacity" in r["formation"]]
    assert len(formed) >= 4, f"only {len(formed)} formed cells in the loop"
    complete = 0
    for record in formed:
        cell = state.cell(record["identification"]["cellId"])
        assert cell is not None and cell.roll_id
        lineage = {step["step"]: step for step in record["materialLineage"]}
        assert list(lineage) == list(PROCESS_STEPS)
        assert {step["roll"] for step in lineage.values()} == {cell.roll_id}
        passed = {p.machine for p in state.roll(cell.roll_id)}
        assert {s for s, step in lineage.items() if step["recorded"]} == passed & set(PROCESS_STEPS)
        complete += passed >= set(PROCESS_STEPS)
        position = lineage["calender1"]["positionM"]
        raw_positions = _raw(influxd, filled, "cycler1", "position_m")
        stored = raw_positions[raw_positions["time"].between(cell.first_ns, cell.last_ns)]["value"]
        assert position in set(stored), "the position the cycler reported for this cell"
        for machine, signal in (("coater1", "dry_loading"), ("calender1", "porosity")):
            if not lineage[machine]["recorded"]:
                continue
            summary = next(q for q in lineage[machine]["qualitySignals"] if q["signal"] == signal)
            if lineage[machine]["materialBasis"] == "position":
                expected = _material_mean(influxd, filled, machine, signal, str(cell.roll_id), position)
            else:  # no position near the cell's was stored: the passport says so and takes the passage
                passage = next(p for p in state.roll(cell.roll_id) if p.machine == machine)
                expected = _good_mean(influxd, filled, machine, signal, passage.first_ns, passage.last_ns)
            assert summary["mean"] == pytest.approx(expected, rel=1e-9)
            assert summary["count"] > 0 and summary["sd"] >= 0
    assert complete, "no formed cell's roll was both coated and calendered while the twin watched"


def test_the_alerts_on_a_cells_material_are_in_its_passport(
    exported: tuple[Path, list[dict[str, Any]]], filled: Settings
) -> None:
    _, records = exported
    alerts = AlertStore(open_database(filled.twin.state_file)).find(line=filled.line, limit=10_000)
    state = StateStore(open_database(filled.twin.state_file))
    wear = [a for a in alerts if a.cause == "pump_wear"]
    assert wear, f"the loop raised {[a.cause for a in alerts]}"
    touched = 0
    for record in records:
        cell = state.cell(record["identification"]["cellId"])
        assert cell is not None
        roll = cell.roll_id
        expected = {
            f"urn:linetwin:alert:{a.id}"
            for a in alerts
            if roll in a.rolls or record["identification"]["cellId"] in a.cells
        }
        assert {a["@id"] for a in record["alerts"]} == expected
        touched += bool(expected)
        if expected:
            assert record["formation"]["verdict"].startswith("flagged: ")
    assert touched, "no formed cell was built from a roll the pump-wear alert names"


def test_the_aas_export_reads_back_through_basyx_with_the_passports_values(
    exported: tuple[Path, list[dict[str, Any]]],
) -> None:
    out, records = exported
    for objects in (aas.read_json(out / "passports.aas.json"), aas.read_aasx(out / "passports.aasx")):
        by_id = {o.id: o for o in objects}
        for record in records:
            shell = by_id[f"{record['@id']}:aas"]
            assert shell.asset_information.global_asset_id == record["@id"]
            nameplate = by_id[f"{record['@id']}:sm:nameplate"]
            values = {e.id_short: e.value for e in nameplate.submodel_element}
            assert values["SerialNumber"] == record["identification"]["cellId"]
            assert values["DateOfManufacture"] == record["identification"]["manufacturingDate"]
            lineage = by_id[f"{record['@id']}:sm:lineage"]
            for collection, step in zip(lineage.submodel_element, record["materialLineage"], strict=True):
                assert collection.get_referable("step").value == step["step"]
                for k, quality in enumerate(step.get("qualitySignals", [])):
                    entry = collection.get_referable("qualitySignals").get_referable(
                        f"qualitySignals_{k:03d}"
                    )
                    assert entry.get_referable("mean").value == quality["mean"]
                    assert entry.get_referable("signal").value == quality["signal"]


def test_the_json_ld_expands_to_the_vocabularies_it_names(
    exported: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, records = exported
    record = next(r for r in records if r["materialLineage"] and r["materialLineage"][0]["recorded"])
    [expanded] = jsonld.expand(record)
    assert expanded["@type"] == [LT + "CellPassport"]
    identification = expanded[LT + "identification"][0]
    assert (
        identification["urn:samm:io.admin-shell.idta.batterypass.digital_nameplate:1.0.0#serialNumber"][0][
            "@value"
        ]
        == record["identification"]["cellId"]
    )
    assert "urn:samm:io.BatteryPass.GeneralProductInformation:1.2.0#manufacturingDate" in identification
    step = expanded[LT + "materialLineage"][0]["@list"][0]
    loading = next(q for q in step[LT + "qualitySignal"] if q[LT + "signal"][0]["@value"] == "dry_loading")
    assert loading["http://qudt.org/schema/qudt/hasUnit"] == [
        {"@id": "http://qudt.org/vocab/unit/MilliGM-PER-CentiM2"}
    ]
    assert loading["http://qudt.org/schema/qudt/ucumCode"] == [{"@value": "mg/cm2"}]


def test_a_second_export_gives_the_same_versioned_records(
    exported: tuple[Path, list[dict[str, Any]]], filled: Settings, tmp_path: Path
) -> None:
    _, records = exported
    cell = records[0]["identification"]["cellId"]
    _twin(filled, tmp_path, "export", "passport", cell, "--out", str(tmp_path))
    [again] = [json.loads(p.read_text()) for p in tmp_path.glob("cell-*.jsonld")]
    assert again == records[0]
    assert again["passportVersion"] == 1


def test_a_data_export_read_back_by_the_backtest_finds_what_the_live_twin_found(
    filled: Settings, influxd: Influxd, tmp_path: Path
) -> None:
    alerts = AlertStore(open_database(filled.twin.state_file)).find(line=filled.line, limit=10_000)
    span = _query(influxd, filled, f'SELECT first("value") FROM "process" WHERE "line" = \'{filled.line}\'')[
        0
    ]["values"][0][0]
    last = _query(influxd, filled, f'SELECT last("value") FROM "process" WHERE "line" = \'{filled.line}\'')[
        0
    ]["values"][0][0]
    since = pd.Timestamp(span, unit="ns", tz="UTC").isoformat()
    until = pd.Timestamp(last + 10**9, unit="ns", tz="UTC").isoformat()
    out = tmp_path / "export"
    _twin(filled, tmp_path, "export", "data", "--since", since, "--until", until, "--out", str(out))
    description = json.loads((out / "dataset.jsonld").read_text())
    assert jsonld.expand(description)[0]["@type"] == ["http://www.w3.org/ns/dcat#Dataset"]
    process = pd.read_parquet(out / "process.parquet")
    times = pd.to_datetime(process["time"], utc=True)
    rows = int((times <= times.iloc[0] + pd.Timedelta(seconds=filled.models.calibration_s)).sum())
    result = tmp_path / "detections.json"
    _twin(filled, tmp_path, "backtest", str(out), "--train-rows", str(rows), "--out", str(result))
    found = {(d["machine"], d["signal"], d["cause"]) for d in json.loads(result.read_text())}
    live = {(a.machine, a.signal, a.cause) for a in alerts}
    # A consequence of an upstream drift (a loading that arrives from the coater) is raised alone when
    # its root is not yet raised, else listed on the root's alarm; which comes first depends on where
    # each calibration started (the live twin's first sample, the export's first row). The roots match.
    roots_found, roots_live = (
        {f for f in findings if (f[0], f[2]) not in CONSEQUENCES} for findings in (found, live)
    )
    assert roots_live and roots_found == roots_live, "every step's, the cells' included"


def test_the_api_serves_the_record_the_export_wrote(
    exported: tuple[Path, list[dict[str, Any]]], filled: Settings
) -> None:
    from fastapi.testclient import TestClient

    from twin.api.app import create_app
    from twin.modeladapter import analyser_factory
    from twin.service import build_twin

    _, records = exported
    twin = build_twin(filled, analyser_factory(filled), None, influx_enabled=False)
    with TestClient(create_app(twin, run_engine=False)) as client:
        for record in records[:3]:
            served = client.get(f"/cells/{record['identification']['cellId']}/passport")
            assert served.status_code == 200, served.text
            assert served.json() == record, "the kept version, whoever asks"
            earlier = client.get(
                f"/cells/{record['identification']['cellId']}/passport", params={"version": 1}
            )
            assert earlier.json() == record
        roll = next(r["materialLineage"][0]["roll"] for r in records if r["materialLineage"])
        rolled = client.get(f"/rolls/{roll}/passport").json()
        assert rolled["@type"] == "lt:RollRecord" and rolled["cells"]
        assert client.get("/cells", params={"line": filled.line}).json()["cells"]
