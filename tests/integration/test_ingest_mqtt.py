"""MQTT → InfluxDB against real Mosquitto and influxd: every sample exactly once, bad input counted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from bench.ingest_sources import CyclerSource
from connectors.service import IngestService
from core import bus
from core.localservices import Influxd, Mosquitto
from core.settings import Settings
from tests.integration.ingest_support import count, ingest_settings, points, wait_for

pytestmark = pytest.mark.integration


async def _started(settings: Settings) -> tuple[IngestService, asyncio.Event, asyncio.Task[None]]:
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(
        lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="MQTT subscription"
    )
    return service, stop, task


@pytest.fixture
async def running(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> AsyncIterator[tuple[IngestService, Settings]]:
    settings = ingest_settings(tmp_path, mosquitto, influxd)
    service, stop, task = await _started(settings)
    yield service, settings
    stop.set()
    await task


async def test_every_json_sample_is_in_influxdb_exactly_once_with_units_tags_and_times(
    running: tuple[IngestService, Settings], mosquitto: Mosquitto, influxd: Influxd
) -> None:
    service, settings = running
    source = CyclerSource(mosquitto.host, mosquitto.port, channels=4, per_message=5)
    sent: dict[tuple[str, int], int] = {}
    original = source.client.publish

    def spy(topic: str, payload: str, qos: int = 0, **_: object) -> mqtt.MQTTMessageInfo:
        for record in json.loads(payload):
            sent[(topic.split("/")[4], record["seq"])] = record["ts"]
        return original(topic, payload, qos=qos)

    source.client.publish = spy  # type: ignore[method-assign, assignment]
    for _ in range(50):
        source.publish_round()
    source.close()
    database = settings.influx.database
    await wait_for(lambda: count(influxd, database) >= 1000, what="1000 points")
    rows = points(influxd, database, "")
    assert len(rows) == 1000
    got = {(row["channel"], row["seq"]) for row in rows}
    assert got == set(sent)
    for row in rows:
        assert (row["line"], row["machine"], row["signal"], row["unit"], row["quality"]) == (
            "line1",
            "cycler1",
            "voltage",
            "V",
            "good",
        )
    response = httpx.post(  # noqa: ASYNC210 - a one-off test query
        f"{influxd.url}/query",
        params={"db": database, "q": "SELECT value, seq, channel FROM process", "epoch": "ns"},
    )
    stamped = {
        (channel, seq): time for time, _, seq, channel in response.json()["results"][0]["series"][0]["values"]
    }
    assert stamped == sent, "every point must be written at its source timestamp"
    await wait_for(lambda: service.accounting.total("written") == 1000, what="written counter")
    assert service.accounting.total("received") == 1000
    assert service.accounting.total("seq_gaps") == 0
    assert service.accounting.total("rejected") == 0


async def test_samples_are_republished_on_the_plant_bus(
    running: tuple[IngestService, Settings], mosquitto: Mosquitto
) -> None:
    received: list[bytes] = []
    listener = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    listener.on_message = lambda c, u, m: received.append(bytes(m.payload))
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe(running[1].namespace().bus("cycler1"), qos=1)
    listener.loop_start()
    await asyncio.sleep(0.3)
    source = CyclerSource(mosquitto.host, mosquitto.port, channels=2, per_message=3, run="bus")
    source.publish_round()
    source.close()
    await wait_for(lambda: sum(len(bus.decode(p)) for p in received) >= 6, what="bus samples")
    listener.loop_stop()
    samples = [s for p in received for s in bus.decode(p)]
    assert {(s.channel, s.seq) for s in samples} == {(c, q) for c in ("ch01", "ch02") for q in range(3)}
    assert all(s.unit == "V" and s.signal == "voltage" for s in samples)
