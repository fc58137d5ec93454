"""What-if through the whole loop: it answers whatever order the services start in, and what it predicts
for a setpoint step is what the plant then does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import pytest

from bench.e2e import ingest_process, pipeline_settings, simulator, twin_process
from bench.whatif_steps import STEPS, run_steps, table_rows
from core.localservices import Influxd, Mosquitto
from core.settings import Settings

pytestmark = pytest.mark.integration

QUALITIES = {"dry_loading", "porosity", "thickness"}


def _settings(mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path) -> Settings:
    settings = pipeline_settings(
        mosquitto.port, influxd.url, tmp_path, speed=120.0, tick_s=2.0, cycler_channels=1
    )
    settings.models.calibration_s = 600.0
    return settings


def _answers(settings: Settings, within_s: float) -> dict[str, object]:
    url = f"http://127.0.0.1:{settings.twin.port}"
    deadline = time.monotonic() + within_s
    while True:
        response = httpx.post(f"{url}/whatif", json={}, timeout=10)
        body = response.json()
        if response.status_code == 200 and {p["quantity"] for p in body["predictions"]} >= QUALITIES:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"no loading, porosity and thickness within {within_s} s: {body}")
        time.sleep(1.0)


@pytest.mark.parametrize("order", ["twin-first", "ingest-first", "all-at-once"])
def test_whatif_answers_with_no_setpoints_whatever_order_the_services_start_in(
    order: str, mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = _settings(mosquitto, influxd, tmp_path)
    with simulator(settings), contextlib.ExitStack() as stack:
        if order == "twin-first":
            stack.enter_context(twin_process(settings))
            stack.enter_context(ingest_process(settings))
        elif order == "ingest-first":
            stack.enter_context(ingest_process(settings))
            time.sleep(5.0)  # ingest has read and published every setpoint before the twin subscribes
            stack.enter_context(twin_process(settings))
        else:
            stack.enter_context(ingest_process(settings))  # spawned, not waited for
            stack.enter_context(twin_process(settings))
        body = _answers(settings, 90)
        assert body["unavailable"] == [
            {"quantity": "cell_capacity", "reason": body["unavailable"][0]["reason"]}
        ]
        assert body["unavailable"][0]["reason"].startswith("cell model calibrating")
        machines = httpx.get(f"http://127.0.0.1:{settings.twin.port}/lines/{settings.line}/state").json()
        assert "line_load_setpoint" in machines["machines"]["calender1"], "the live state has the setpoints"


async def test_a_twin_subscribing_after_ingest_read_the_setpoints_knows_them_without_influxdb(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    from bench.e2e import running_twin

    settings = _settings(mosquitto, influxd, tmp_path)
    settings.influx.url = "http://127.0.0.1:9"  # the twin cannot seed from the database: only the bus helps
    upstream_settings = settings.model_copy(deep=True)
    upstream_settings.influx.url = influxd.url
    with simulator(upstream_settings), ingest_process(upstream_settings):
        await asyncio.sleep(8.0)  # every setpoint was read and published before the twin exists
        async with running_twin(settings) as twin:
            deadline = time.monotonic() + 10
            live = twin.engine.live.lines
            while "line_load_setpoint" not in live.get(settings.line, {}).get("calender1", {}):
                assert time.monotonic() < deadline, "the retained state did not reach the twin"
                await asyncio.sleep(0.2)
            held = twin.engine.workers[settings.line].analyser.held  # type: ignore[attr-defined]
            assert {"pump_flow_setpoint", "web_speed_setpoint"} <= set(held["coater1"])


def test_each_setpoint_step_lands_inside_the_predicted_interval(
    mosquitto: Mosquitto, influxd: Influxd, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = run_steps(mosquitto.port, influxd.url, speed=120.0)
    with capsys.disabled():
        for row in table_rows(checks):
            print(" | ".join(row.values()))
    assert len({c.step for c in checks}) == len(STEPS) >= 6
    missed = [c for c in checks if not (c.inside and c.close)]
    assert not missed, missed
