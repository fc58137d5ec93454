"""The twin engine against real Mosquitto and influxd, without HTTP: bus in, alerts out, seeding."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from core import bus
from core.localservices import Influxd, Mosquitto, start_influxd
from core.sample import Sample
from core.settings import Settings
from tests.integration.twin_support import pump_wear
from twin.alerts import open_database
from twin.engine import TwinEngine
from twin.modeladapter import LineModelAnalyser

pytestmark = pytest.mark.integration


def _settings(mosquitto: Mosquitto, influxd: Influxd, line: str, files: Path) -> Settings:
    return Settings.model_validate(
        {
            "line": line,
            "mqtt": {"port": mosquitto.port, "client_id_prefix": f"t{uuid.uuid4().hex[:6]}"},
            "influx": {"url": influxd.url, "flush_interval_ms": 50},
            "twin": {"state_file": str(files / "twin.sqlite")},
        }
    )


async def _until(condition: object, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_engine_seeds_from_influx_takes_the_bus_and_publishes_alerts(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    line = f"eng{uuid.uuid4().hex[:6]}"
    settings = _settings(mosquitto, influxd, line, tmp_path)
    influxd.create_database(settings.influx.database)
    written = await httpx.AsyncClient().post(
        f"{influxd.url}/write",
        params={"db": settings.influx.database, "precision": "ns"},
        content=(
            f"process,line={line},machine=coater1,quality=good,signal=pump_flow_setpoint,unit=mL/min "
            f"value=79.28 1700000000000000000"
        ),
    )
    assert written.status_code == 204

    received: list[dict[str, object]] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_message = lambda _c, _u, message: received.append(json.loads(message.payload))
    listener.connect("127.0.0.1", mosquitto.port)
    listener.subscribe(settings.namespace(line).alerts, 1)
    listener.loop_start()

    engine = TwinEngine(settings, LineModelAnalyser, open_database(settings.twin.state_file))
    await engine.start()
    try:
        live = engine.live.lines[line]["coater1"]
        assert live["pump_flow_setpoint"].value == 79.28, "the setpoint OPC UA will not resend is known"
        analyser = engine.workers[line].analyser
        assert isinstance(analyser, LineModelAnalyser)
        assert analyser.held["coater1"]["pump_flow_setpoint"].value == 79.28

        await _until(lambda: engine.connected)
        now = time.time_ns()
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        publisher.connect("127.0.0.1", mosquitto.port)
        publisher.loop_start()
        sample = Sample(line, "coater1", "pump_flow", 78.9, "mL/min", now, now, roll_id="CAT-00007")
        topic = settings.namespace(line).bus("coater1")
        publisher.publish(topic, bus.encode([sample]), qos=1).wait_for_publish(5)
        await _until(lambda: "pump_flow" in engine.live.lines[line]["coater1"])
        assert engine.live.lines[line]["coater1"]["pump_flow"].roll_id == "CAT-00007"
        publisher.publish(topic, b"{not json", qos=1).wait_for_publish(5)
        await _until(lambda: engine.metrics.rejected.labels("malformed_json")._value.get() == 1)
        publisher.loop_stop()

        engine.raise_alert(pump_wear(line, now))
        await _until(lambda: bool(received))
        assert received[0]["cause"] == "pump_wear" and received[0]["state"] == "active_unacknowledged"
        assert received[0]["rolls"] == ["CAT-00007"], "affected rolls come from the genealogy"
        await _until(
            lambda: bool(influxd.query(f'SELECT "cause" FROM "alert" WHERE "line" = \'{line}\'', "linetwin"))
        )
    finally:
        await engine.stop()
        listener.loop_stop()
    assert engine.state.load_snapshot(line) is not None, "stop leaves a snapshot for the next worker"


async def test_alerts_raised_while_influxd_is_down_reach_it_after_a_twin_restart(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Nothing lost on the twin's side either: points it cannot write wait in its spool on disk, across a
    restart of the twin, and arrive once the database is back."""
    line = f"out{uuid.uuid4().hex[:6]}"
    influxd = start_influxd()
    try:
        settings = _settings(mosquitto, influxd, line, tmp_path)
        settings.influx.retry_max_s = 0.5
        influxd.create_database(settings.influx.database)
        engine = TwinEngine(settings, LineModelAnalyser, open_database(settings.twin.state_file))
        await engine.start()
        influxd.kill()
        now = time.time_ns()
        engine.raise_alert(pump_wear(line, now))
        assert engine.writer is not None
        await _until(lambda: len(engine.writer.spool) > 0, within_s=30)
        await engine.stop()

        influxd.start()
        engine = TwinEngine(settings, LineModelAnalyser, open_database(settings.twin.state_file))
        await engine.start()
        try:
            writer = engine.writer
            assert writer is not None
            await _until(lambda: len(writer.spool) == 0, within_s=30)
            query = f'SELECT "cause", "state" FROM "alert" WHERE "line" = \'{line}\''
            assert influxd.query(query, "linetwin")[0]["values"][0][1:] == [
                "pump_wear",
                "active_unacknowledged",
            ]
        finally:
            await engine.stop()
    finally:
        influxd.cleanup()
