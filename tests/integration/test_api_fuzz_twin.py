"""Property-based fuzzing of the twin's API from its OpenAPI schema (schemathesis, all checks).

The app runs the real LineModel analyser and proxies history to the real influxd; a few plant-bus
samples and one alert are fed in so that ids and names exist. No response may be a 5xx, every answer
must match the schema, and a change without the token must be refused.
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from core import bus
from core.localservices import Influxd
from core.sample import Sample
from core.settings import Settings
from tests.integration.twin_support import pump_wear
from twin.api.app import create_app
from twin.modeladapter import analyser_factory, whatif_models
from twin.service import build_twin

pytestmark = pytest.mark.integration

TOKEN = "fuzz-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def app(influxd: Influxd, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    config = Settings.model_validate(
        {
            "line": "fuzz",
            "influx": {"url": influxd.url},
            "twin": {"api_token": TOKEN, "state_file": str(tmp_path_factory.mktemp("fuzz") / "twin.sqlite")},
        }
    )
    twin = build_twin(config, analyser_factory(config), whatif_models(config), influx_enabled=False)
    engine = twin.engine
    samples = [
        Sample("fuzz", "coater1", "pump_flow", 79.3, "mL/min", t * 10**9, t * 10**9, roll_id="CAT-00001")
        for t in range(1, 4)
    ]
    engine.dispatch(config.namespace().bus("coater1"), bus.encode(samples))
    worker = engine.workers["fuzz"]
    worker.take(*worker.queue.get_nowait())
    engine.raise_alert(pump_wear("fuzz", 10**9))
    engine.connected = True  # no broker runs here: /health would rightly answer 503 degraded
    return create_app(twin, run_engine=False)


def test_no_5xx_and_every_answer_matches_the_schema(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=AUTH)

        check()


def test_changes_without_the_token_are_refused(app: FastAPI) -> None:
    client = TestClient(app)
    for path, body in [
        ("/alerts/1/acknowledge", {"by": "mallory"}),
        ("/alerts/1/shelve", {"by": "mallory", "duration_s": 60}),
        ("/alerts/1/unshelve", {"by": "mallory"}),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            response = client.post(path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert "token" in response.json()["detail"]
    assert all(event["who"] != "mallory" for event in client.get("/alerts/1").json()["events"])
    saved = client.post("/whatif", json={"setpoints": {"pump_flow": 80.0}, "save": True})
    assert saved.status_code == 401
