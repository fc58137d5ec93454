"""Every dashboard is generated from code, current, and wired to the provisioned InfluxDB datasource."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import build

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_FILES = sorted((ROOT / "dashboards/json").glob("*.json"))
LINE_FILES = sorted((ROOT / "dashboards/json/lines").glob("*.json"))  # one per lines/*.toml
MIN_SCHEMA_VERSION = 39  # Grafana 11


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _datasource_uid() -> str:
    provisioning = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/influxdb.yaml").read_text())
    uid: str = provisioning["datasources"][0]["uid"]
    return uid


def test_committed_dashboards_are_what_the_code_generates() -> None:
    assert build.main(["--check"]) == 0


def test_there_is_a_dashboard_for_every_operator_view() -> None:
    assert {path.stem for path in DASHBOARD_FILES} == {
        "linetwin-overview",
        "linetwin-coater",
        "linetwin-calender",
        "linetwin-formation",
        "linetwin-connectors",
    }


def test_every_shipped_line_gets_its_dashboard() -> None:
    assert [p.stem for p in LINE_FILES] == sorted(p.stem for p in (ROOT / "lines").glob("*.toml"))
    solid = _load(ROOT / "dashboards/json/lines/solid-state.json")
    titles = [panel["title"] for panel in solid["panels"]]
    assert any(t.endswith(": relative_density") for t in titles) and "Alerts" in titles
    density = next(p for p in solid["panels"] if p["title"].endswith(": relative_density"))
    assert [t["alias"] for t in density["targets"]] == ["measured", "lower spec", "upper spec"]


@pytest.mark.parametrize("path", DASHBOARD_FILES + LINE_FILES, ids=lambda p: p.stem)
def test_dashboard_schema_and_datasource_references(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["schemaVersion"] >= MIN_SCHEMA_VERSION
    assert dashboard["uid"] == (f"linetwin-line-{path.stem}" if path in LINE_FILES else path.stem)
    uid = _datasource_uid()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["gridPos"]["w"] > 0
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid
            assert target["rawQuery"] is True and "$timeFilter" in target["query"], panel["title"]
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid


@pytest.mark.parametrize("path", DASHBOARD_FILES + LINE_FILES, ids=lambda p: p.stem)
def test_alerts_are_annotations_on_every_dashboard(path: Path) -> None:
    annotations = _load(path)["annotations"]["list"]
    alert = next(a for a in annotations if a["name"] == "Alerts")
    assert 'FROM "alert"' in alert["query"] and alert["enable"] is True


def test_template_variables_cover_line_machine_roll_and_channel() -> None:
    names = {variable["name"] for path in DASHBOARD_FILES for variable in _load(path)["templating"]["list"]}
    assert {"line", "machine", "roll", "channel"} <= names


def test_panels_do_not_overlap() -> None:
    for path in DASHBOARD_FILES + LINE_FILES:
        cells: set[tuple[int, int]] = set()
        for panel in _load(path)["panels"]:
            grid = panel["gridPos"]
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & area, f"{path.stem}: {panel['title']} overlaps another panel"
            cells |= area
            assert grid["x"] + grid["w"] <= 24
