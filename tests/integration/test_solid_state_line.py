"""The solid-state line through the whole loop, from files alone: ``twin sim --line lines/solid-state.toml``
serves it over OPC UA, ``twin ingest`` discovers and stores it, ``twin serve`` models it from the same
description, calibrates both steps and raises the seeded atmosphere leak with its cause; every query of
the line's generated Grafana dashboard returns data."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bench.e2e import ingest_process, pipeline_settings, simulator, twin_process
from core import linedesc
from core.localservices import Influxd, Mosquitto
from tests.integration.dashboard_support import empty_panels
from tests.integration.twin_support import wait_for_api

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_a_described_solid_state_line_runs_sim_ingest_and_serve_and_its_leak_is_found(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(
        mosquitto.port, influxd.url, tmp_path, scenario="furnace-atmosphere-leak", speed=120.0, tick_s=2.0
    )
    settings.line_description = linedesc.builtin_path("solid-state")
    settings.models.calibration_s = 1200.0
    url = f"http://127.0.0.1:{settings.twin.port}"
    with ingest_process(settings), simulator(settings), twin_process(settings):
        alert = wait_for_api(
            url,
            "/alerts",
            lambda alerts: next((a for a in alerts if a["cause"] == "atmosphere_leak"), None),
            within_s=120.0,
        )
        assert (alert["machine"], alert["signal"]) == ("furnace1", "o2")
        parameters = httpx.get(f"{url}/models/parameters", timeout=10).json()[0]["parameters"]
        learnt = {(p["machine"], p["name"]) for p in parameters}
        assert {("press1", "feeder_efficiency"), ("furnace1", "density_at_recipe")} <= learnt
        alerts = httpx.get(f"{url}/alerts", timeout=10).json()
        assert {a["cause"] for a in alerts} == {"atmosphere_leak"}, "nothing else is raised"
        catalogue = httpx.get(f"{url}/whatif/inputs", timeout=10).json()
        assert {"powder_feed", "zone3_temperature", "belt_speed"} <= {i["name"] for i in catalogue["inputs"]}
        time.sleep(12.0)  # the twin writes spec limits every 5 s, the connectors' counters every 10 s
        empty = empty_panels(ROOT / "dashboards/json/lines/solid-state.json", influxd, settings)
        assert not empty, "panels of the line's generated dashboard without data:\n" + "\n".join(empty)
    truth = (tmp_path / "ground_truth.jsonl").read_text()
    assert '"machine": "furnace1"' in truth and "furnace1.o2" in truth
