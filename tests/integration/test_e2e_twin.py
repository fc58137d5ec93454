"""The whole loop with real Mosquitto and influxd: simulator scenario -> connectors -> twin -> alert.

The alert must show in the API and in InfluxDB with the right cause; acknowledge and shelve go through
the API (refused without the token); after a restart of the twin service the alert, its state and the
line's calibrated model are still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from bench.e2e import pipeline_settings, running_twin, upstream
from core.localservices import Influxd, Mosquitto

pytestmark = pytest.mark.integration

TOKEN = "e2e-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _wait_for(client: httpx.AsyncClient, path: str, check: Any, within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        body = (await client.get(path)).json()
        if found := check(body):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not show what was expected within {within_s} s: {body}")
        await asyncio.sleep(0.5)


async def test_pump_wear_reaches_the_api_and_influx_and_survives_a_restart(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(
        mosquitto.port,
        influxd.url,
        tmp_path,
        scenario="pump-wear",
        speed=150.0,
        tick_s=2.0,
        api_token=TOKEN,
    )
    url = f"http://127.0.0.1:{settings.twin.port}"
    line = settings.line
    with contextlib.ExitStack() as plant_side:
        async with running_twin(settings), httpx.AsyncClient(base_url=url, timeout=10) as client:
            plant_side.enter_context(upstream(settings))  # after the twin: it hears the first reports
            alert = await _wait_for(
                client,
                "/alerts",
                lambda alerts: next((a for a in alerts if a["cause"] == "pump_wear"), None),
                120,
            )
            assert alert["line"] == line and alert["machine"] == "coater1"
            assert alert["state"] == "active_unacknowledged"
            assert alert["rolls"], "an alert names the rolls coated since onset"
            refused = await client.post(f"/alerts/{alert['id']}/acknowledge", json={"by": "ana"})
            assert refused.status_code == 401
            acked = await client.post(f"/alerts/{alert['id']}/acknowledge", json={"by": "ana"}, headers=AUTH)
            assert acked.json()["state"] == "acknowledged"
            shelved = await client.post(
                f"/alerts/{alert['id']}/shelve", json={"by": "ben", "duration_s": 3600}, headers=AUTH
            )
            assert shelved.json()["state"] == "shelved"
            params_before = (await client.get("/models/parameters")).json()[0]["parameters"]
            assert params_before, "the line model calibrated on the live data"
        annotations = influxd.query(
            f'SELECT "cause", "title" FROM "alert" WHERE "line" = \'{line}\'', settings.influx.database
        )
        rows = cast(list[list[Any]], annotations[0]["values"]) if annotations else []
        assert {row[1] for row in rows} >= {"pump_wear"}
        outputs = influxd.query(
            f'SELECT count("value") FROM "model" WHERE "line" = \'{line}\' GROUP BY "kind"',
            settings.influx.database,
        )
        kinds = {cast(dict[str, str], serie["tags"])["kind"] for serie in outputs}
        assert kinds >= {"predicted", "residual", "statistic"}

        async with running_twin(settings), httpx.AsyncClient(base_url=url, timeout=10) as client:
            again = (await client.get(f"/alerts/{alert['id']}")).json()
            assert (again["state"], again["acknowledged_by"], again["shelved_by"]) == (
                "shelved",
                "ana",
                "ben",
            )
            assert [e["action"] for e in again["events"]][:3] == ["raise", "acknowledge", "shelve"]
            restored = (await client.get("/models/parameters")).json()[0]["parameters"]
            assert {p["name"] for p in restored} == {p["name"] for p in params_before}
            state = (await client.get(f"/lines/{line}/state")).json()
            assert state["machines"]["coater1"]["pump_flow"]["unit"] == "mL/min"


async def test_an_approved_setpoint_reaches_the_simulated_plant_only_when_allowed(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(mosquitto.port, influxd.url, tmp_path, speed=20.0, api_token=TOKEN)
    url = f"http://127.0.0.1:{settings.twin.port}"
    body = {"by": "ana", "setpoints": {"pump_flow": 85.0}}
    with contextlib.ExitStack() as plant_side:
        async with running_twin(settings), httpx.AsyncClient(base_url=url, timeout=10) as client:
            plant_side.enter_context(upstream(settings))
            off = await client.post("/whatif/push", json=body, headers=AUTH)
            assert off.status_code == 403 and "allow_setpoint_push" in off.json()["detail"]
        allowed = settings.model_copy(
            update={"twin": settings.twin.model_copy(update={"allow_setpoint_push": True})}
        )
        async with running_twin(allowed), httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.post("/whatif/push", json=body)).status_code == 401
            pushed = await client.post("/whatif/push", json=body, headers=AUTH)
            assert pushed.status_code == 200, pushed.text
            await _wait_for(
                client,
                "/machines/coater1",
                lambda m: m.get("signals", {}).get("pump_flow_setpoint", {}).get("value") == 85.0,
                30,
            )
            width = {"by": "ana", "setpoints": {"coating_width": 290.0}}
            refused = await client.post("/whatif/push", json=width, headers=AUTH)
            assert refused.status_code == 422 and "not a plant setpoint" in refused.json()["detail"]
