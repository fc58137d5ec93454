"""A vendor's line with two coaters through the whole loop, from files alone: ``twin sim --line
lines/two-coater.toml`` serves its anode and cathode coaters and calenders over OPC UA in the vendor's
names and units (g/m², cm³/s, µm, kN/m) and its formation cyclers over MQTT (capacity in mA·h), under the
description's namespace; ``twin ingest`` discovers and stores it with the built-in tag map; ``twin serve``
calibrates every step and raises the anode pump's wear on the anode coater, with its cause, and nothing on
the cathode's chain; every query of the line's generated dashboard returns data. No code names this
line."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bench.e2e import ingest_process, pipeline_settings, simulator, twin_process
from core import linedesc
from core.localservices import Influxd, Mosquitto
from tests.integration.dashboard_support import empty_panels
from tests.integration.ingest_support import points
from tests.integration.twin_support import wait_for_api

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_two_coaters_and_a_formation_run_from_their_description_and_the_anode_pump_wear_is_found(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(
        mosquitto.port,
        influxd.url,
        tmp_path,
        scenario="pump-wear",
        speed=80.0,
        tick_s=1.0,
        cycler_channels=4,
        line_description=linedesc.builtin_path("two-coater"),
    )
    assert (settings.site, settings.area) == ("lyon", "cells"), "the description's ISA-95 levels"
    settings.models.calibration_s = 1200.0
    settings.models.calibration_cells = 8  # so the cell model's panels fill within the run
    url = f"http://127.0.0.1:{settings.twin.port}"
    with ingest_process(settings), simulator(settings), twin_process(settings):
        alert = wait_for_api(
            url,
            "/alerts",
            lambda alerts: next((a for a in alerts if a["cause"] == "pump_wear"), None),
            within_s=180.0,
        )
        assert (alert["machine"], alert["signal"]) == ("anode_coater", "pump_flow_rate")
        parameters = httpx.get(f"{url}/models/parameters", timeout=10).json()[0]["parameters"]
        calibrated = {p["machine"] for p in parameters}
        assert {"anode_coater", "cathode_coater", "anode_calender", "cathode_calender"} <= calibrated
        alerts = httpx.get(f"{url}/alerts", timeout=10).json()
        assert not [a for a in alerts if a["machine"].startswith("cathode")], "the cathode chain is healthy"
        where = (
            f"WHERE line = '{settings.line}' AND machine = 'cell_formation' AND signal = 'discharge_capacity'"
        )
        cells = points(influxd, settings.influx.database, where)
        time.sleep(12.0)  # the twin writes spec limits every 5 s, the connectors' counters every 10 s
        empty = empty_panels(ROOT / "dashboards/json/lines/two-coater.json", influxd, settings)
        assert not empty, "panels of the line's generated dashboard without data:\n" + "\n".join(empty)
    assert cells, "the cyclers' results reach InfluxDB under the formation step"
    assert {row["unit"] for row in cells} == {"mA.h"}
    assert all(1000.0 < row["value"] < 10000.0 for row in cells), "capacity in mA·h, not A·h"
    assert all(str(row["roll_id"]).startswith("CAT-") for row in cells), "cells are cut from cathode rolls"
    truth = (tmp_path / "ground_truth.jsonl").read_text()
    assert '"machine": "anode_coater"' in truth and "anode_coater.pump_flow_rate" in truth
