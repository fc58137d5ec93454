"""OPC UA → InfluxDB: every tick exactly once by ScanCounter, recovery after server outages."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.ingest_sources import OpcUaSource
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port
from core.settings import Settings
from tests.integration.ingest_support import count, ingest_settings, points, wait_for

pytestmark = pytest.mark.integration

SIGNALS = ["pump_flow", "web_speed", "dry_loading", "thickness"]


@pytest.fixture
async def source() -> AsyncIterator[OpcUaSource]:
    server = OpcUaSource(free_port(), machines=2, signals=4)
    await server.start()
    yield server
    await server.stop()


def _settings(tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, endpoint: str) -> Settings:
    return ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={"endpoints": [endpoint]},
    )


async def _start(settings: Settings) -> tuple[IngestService, asyncio.Event, asyncio.Task[None]]:
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="OPC UA session")
    return service, stop, task


def _ticks(influxd: Influxd, database: str) -> dict[tuple[str, str], list[int]]:
    seqs: dict[tuple[str, str], list[int]] = {}
    for row in points(influxd, database, "WHERE seq > 0"):
        seqs.setdefault((row["machine"], row["signal"]), []).append(row["seq"])
    return seqs


async def test_every_tick_is_in_influxdb_exactly_once_with_its_scan_counter(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, source: OpcUaSource
) -> None:
    settings = _settings(tmp_path, mosquitto, influxd, source.endpoint)
    service, stop, task = await _start(settings)
    await source.run(100, 0.01)
    database = settings.influx.database
    await wait_for(lambda: len(points(influxd, database, "WHERE seq > 0")) >= 800, what="800 points")
    seqs = _ticks(influxd, database)
    assert sorted(seqs) == [(m, s) for m in ("machine1", "machine2") for s in sorted(SIGNALS)]
    for key, values in seqs.items():
        assert sorted(values) == list(range(1, 101)), key
    units = {row["signal"]: row["unit"] for row in points(influxd, database)}
    assert units == {"pump_flow": "mL/min", "web_speed": "m/min", "dry_loading": "mg/cm2", "thickness": "um"}
    for row in points(influxd, database, "WHERE seq > 0"):
        index = ["PumpFlow", "WebSpeed", "DryLoading", "Thickness"].index(
            "".join(w.title() for w in row["signal"].split("_"))
        )
        assert row["value"] == pytest.approx(row["seq"] + index / 10), "value matched to the wrong tick"
    assert service.accounting.total("seq_gaps") == 0
    stop.set()
    await task


async def test_ingest_resumes_after_the_server_stops_and_restarts(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, source: OpcUaSource
) -> None:
    settings = _settings(tmp_path, mosquitto, influxd, source.endpoint)
    service, stop, task = await _start(settings)
    connector = service.opcua[0]
    await source.run(30, 0.01)
    database = settings.influx.database
    await wait_for(lambda: len(points(influxd, database, "WHERE seq > 0")) >= 240, what="first 30 ticks")
    await source.stop()
    await wait_for(lambda: not connector.connected.is_set(), what="loss detected")
    await source.start()
    await wait_for(lambda: connector.connected.is_set() and connector.sessions == 2, what="reconnect")
    await source.run(30, 0.01)
    await wait_for(lambda: len(points(influxd, database, "WHERE seq > 0")) >= 480, what="60 ticks")
    for key, values in _ticks(influxd, database).items():
        assert Counter(values) == Counter(range(1, 61)), key
    assert not task.done()
    stop.set()
    await task


async def test_ingest_recovers_after_kill_9_of_the_server(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "bench.ingest_sources",
        "opcua",
        "--port",
        str(port),
        "--interval",
        "0.02",
    ]

    async def spawn() -> subprocess.Popen[str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: ASYNC220 - kept to kill -9
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        assert json.loads(line)["endpoint"].endswith(f":{port}/bench")
        return process

    server = await spawn()
    try:
        settings = _settings(tmp_path, mosquitto, influxd, f"opc.tcp://127.0.0.1:{port}/bench")
        service, stop, task = await _start(settings)
        connector = service.opcua[0]
        database = settings.influx.database
        await wait_for(lambda: count(influxd, database) >= 80, what="data before the kill")
        server.kill()
        server.wait()
        await wait_for(lambda: not connector.connected.is_set(), what="loss detected")
        before = count(influxd, database)
        server = await spawn()
        await wait_for(lambda: connector.sessions == 2 and connector.connected.is_set(), what="reconnect")
        await wait_for(lambda: count(influxd, database) >= before + 80, what="data after the restart")
        assert not task.done()
        assert service.accounting.total("rejected") == 0
        stop.set()
        await task
    finally:
        server.kill()
        server.wait()


async def test_a_deadband_applies_per_tag_and_never_to_the_scan_counter(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, source: OpcUaSource
) -> None:
    """The bench server steps every value by 1.0 a tick, and its ScanCounter by 1: a deadband of 1 on
    the counter would hold back every tick. Here the line's default deadband is 1, one tag lowers its own
    to 0: that tag's every tick arrives, with its ScanCounter, and the others are held back by theirs."""
    from connectors.tagmap import OpcUaMachine, OpcUaTag, TagMap

    assert source.server is not None
    ns = await source.server.get_namespace_index("urn:linetwin:bench")
    machine = OpcUaMachine(
        machine="coater5",
        scan_counter=f"{ns}:Machine1/{ns}:ScanCounter",
        tags=[
            OpcUaTag(
                node=f"{ns}:Machine1/{ns}:PumpFlow", signal="pump_flow", unit="mL/min", deadband_abs=0.0
            ),
            OpcUaTag(node=f"{ns}:Machine1/{ns}:WebSpeed", signal="web_speed", unit="m/min"),
        ],
    )
    settings = _settings(tmp_path, mosquitto, influxd, source.endpoint)
    settings.opcua.deadband_abs = 1.0
    service = IngestService(settings, TagMap(opcua=[machine]))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="OPC UA session")
    for _ in range(6):
        await source.tick()
        await asyncio.sleep(0.15)
    database = settings.influx.database
    await wait_for(lambda: len(points(influxd, database, "WHERE signal = 'pump_flow' AND seq > 0")) >= 6)
    stop.set()
    await task
    flow = points(influxd, database, "WHERE signal = 'pump_flow' AND seq > 0")
    assert sorted(r["seq"] for r in flow) == list(range(1, 7)), "every tick, numbered by its ScanCounter"
    speeds = points(influxd, database, "WHERE signal = 'web_speed' AND seq > 0")
    assert len(speeds) <= 1, "steps of exactly 1.0 stay inside the deadband of 1"
    assert service.accounting.total("rejected") == 0
