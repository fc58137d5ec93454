"""Passport records and FAIR metadata without a loop: units, lineage order, versions, AAS, the API."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fastapi.testclient import TestClient
from pyld import jsonld

from core import linedesc
from core.qudt import qudt_iri, ucum
from core.sample import Sample
from core.settings import Settings
from tests.unit.test_twin_api import AUTH, twin_client  # noqa: F401  (the API fixture)
from twin import aas, fair
from twin.passport import material_points, screened, upstream_steps
from twin.store import StateStore

PILOT = linedesc.load()


def test_units_are_ucum_codes_with_qudt_iris_and_none_is_guessed() -> None:
    assert (ucum("µm"), ucum("Ah"), ucum("mg/cm2")) == ("um", "A.h", "mg/cm2")
    assert qudt_iri("mg/cm2") == "http://qudt.org/vocab/unit/MilliGM-PER-CentiM2"
    assert qudt_iri("Cel") == "http://qudt.org/vocab/unit/DEG_C"
    assert qudt_iri("mV/d") is None, "no IRI rather than a guessed one"


def test_a_cells_material_is_traced_up_the_flow_of_its_line() -> None:
    assert [s.id for s in upstream_steps(PILOT, "cycler1")] == ["coater1", "calender1"]
    two = linedesc.load(linedesc.builtin_path("two-coater"))
    cell_step = next(s.id for s in two.steps if s.kind == "formation")
    chain = [s.kind for s in upstream_steps(two, cell_step)]
    assert chain[-2:] == ["slot_die_coater", "calender"], "the cathode chain that feeds formation"


def _record(count: int, mean: float = 20.0) -> dict[str, object]:
    signal = {"signal": "dry_loading", "mean": mean, "count": count}
    return {"@id": "urn:x:cell:C1", "materialLineage": [{"step": "coater1", "qualitySignals": [signal]}]}


def test_passports_are_versioned_and_outlive_the_databases_retention() -> None:
    store = StateStore(sqlite3.connect(":memory:", isolation_level=None))
    first = store.keep_passport("urn:x:cell:C1", _record(100), material_points)
    assert first["passportVersion"] == 1
    assert store.keep_passport("urn:x:cell:C1", _record(100), material_points) == first, "same record"
    second = store.keep_passport("urn:x:cell:C1", _record(120, 20.1), material_points)
    assert (
        second["passportVersion"] == 2 and second["materialLineage"][0]["qualitySignals"][0]["count"] == 120
    )
    aged_out = store.keep_passport("urn:x:cell:C1", _record(0), material_points)
    assert aged_out == second, "InfluxDB dropped the raw values: the kept record stands"
    assert {k: v for k, v in (store.passport("urn:x:cell:C1", 1) or {}).items() if k != "digest"} == first


def test_a_screened_cells_record_is_kept_as_it_was_made() -> None:
    store = StateStore(sqlite3.connect(":memory:", isolation_level=None))
    pending = {**_record(100), "formation": {"verdict": "pending: aging not finished"}}
    passed = {**_record(100), "formation": {"verdict": "pass"}}
    assert store.keep_passport("c", pending, material_points, screened)["passportVersion"] == 1
    kept = store.keep_passport("c", passed, material_points, screened)
    assert kept["passportVersion"] == 2, "aging finished: a new version"
    later = {**passed, "materialLineage": [{"step": "coater1", "qualitySignals": [], "parameters": [1]}]}
    assert store.keep_passport("c", later, material_points, screened) == kept, "screened: kept as made"


def test_an_aging_reading_without_a_roll_keeps_the_cells_roll() -> None:
    store = StateStore(sqlite3.connect(":memory:", isolation_level=None))
    formed = Sample(
        "line1",
        "cycler1",
        "discharge_capacity",
        2.9,
        "A.h",
        10,
        10,
        channel="ch01",
        roll_id="R7",
        cell_id="C1",
    )
    aged = Sample(
        "line1", "cycler1", "k_value", 0.4, "mV/d", 20, 20, channel="ch01", roll_id="", cell_id="C1"
    )
    store.record_genealogy([formed])
    store.record_genealogy([aged])
    cell = store.cell("C1")
    assert cell is not None and cell.roll_id == "R7" and cell.last_ns == 20


def test_every_described_series_has_its_unit_source_and_role_and_expands() -> None:
    settings = Settings()
    records = fair.series(settings, PILOT)
    assert len(records) == sum(len(s.signals) for s in PILOT.steps)
    loading = next(r for r in records if r["name"] == "coater1.dry_loading")
    assert loading["unit"] == "http://qudt.org/vocab/unit/MilliGM-PER-CentiM2"
    assert loading["source"]["protocol"] == "opcua"
    capacity = next(r for r in records if r["step"] == "cycler1" and r["signal"] == "discharge_capacity")
    assert capacity["source"]["protocol"] == "mqtt" and capacity["source"]["topic"].startswith("site1/")
    document = fair.line_metadata(settings, PILOT, {"coater1": ("CoaterStep", True)}, 6, {})
    [expanded] = jsonld.expand(document)
    columns = expanded["http://www.w3.org/ns/csvw#column"][0]["@list"]
    assert any(c.get("http://qudt.org/schema/qudt/hasUnit") == [{"@id": loading["unit"]}] for c in columns)


def test_an_aas_of_a_record_reads_back_through_the_sdk(tmp_path: Path) -> None:
    record = {
        "@id": "urn:linetwin:s:a:l:cell:C-1",
        "identification": {"cellId": "C-1", "manufacturingDate": "2026-12-01", "facility": "s/a"},
        "materialLineage": [
            {
                "step": "coater1",
                "roll": "R 1",
                "recorded": True,
                "qualitySignals": [{"signal": "x", "mean": 1.5}],
            }
        ],
        "alerts": [{"@id": "urn:linetwin:alert:3", "cause": "pump_wear"}],
        "formation": {"verdict": "pass"},
    }
    aas.write_json([record], tmp_path / "a.json")
    aas.write_aasx([record], tmp_path / "a.aasx")
    for objects in (aas.read_json(tmp_path / "a.json"), aas.read_aasx(tmp_path / "a.aasx")):
        assert sorted(o.id_short for o in objects) == sorted(
            ["C_1", "Nameplate", "MaterialLineage", "FormationResults", "Alerts"]
        )
    assert aas.id_short("3rd roll/A") == "x_3rd_roll_A"


def test_the_api_serves_a_lines_metadata_and_refuses_an_unknown_cell(twin_client: TestClient) -> None:  # noqa: F811
    metadata = twin_client.get("/lines/line1/metadata", headers=AUTH)
    assert metadata.status_code == 200
    body = metadata.json()
    assert body["@type"] == "dcat:Dataset" and body["columns"]
    models = [a for a in body["wasGeneratedBy"] if a.get("step") == "coater1"]
    assert models and models[0]["modelClass"] == "FakeAnalyser"
    missing = twin_client.get("/cells/NOPE/passport", headers=AUTH)
    assert missing.status_code == 404 and "NOPE" in missing.json()["detail"]
