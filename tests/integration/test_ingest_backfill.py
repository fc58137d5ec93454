"""A network cut between ingest and an OPC UA server that keeps history loses nothing: on reconnect the
missed interval is read back (HistoryRead, raw), every ScanCounter tick is stored once, none counts as a
gap, and the backfilled values are counted."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from bench.ingest_sources import OpcUaSource
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port
from plant.runtime import running
from tests.integration.ingest_support import ingest_settings, points, wait_for

pytestmark = pytest.mark.integration


class Cut:
    """A TCP proxy in front of the server: ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, free_port()
        self.server: asyncio.Server | None = None
        self.links: list[asyncio.StreamWriter] = []

    async def open(self) -> None:
        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            self.links += [writer, up_writer]
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        self.server = await asyncio.start_server(accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for link in self.links:
            link.transport.abort()
        self.links = []
        self.server = None


async def test_a_network_cut_is_backfilled_from_the_servers_history(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    source = OpcUaSource(free_port(), machines=1, signals=2, history=True)
    await source.start()
    proxy = Cut(source.port)
    await proxy.open()
    endpoint = f"opc.tcp://127.0.0.1:{proxy.port}/bench"
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={"endpoints": [endpoint], "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
    )
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    connected = lambda: bool(service.opcua) and service.opcua[0].connected.is_set()  # noqa: E731
    try:
        await wait_for(connected, what="OPC UA session")
        await source.run(20, 0.02)
        await proxy.cut()
        await wait_for(lambda: not connected(), what="the cut noticed")
        await source.run(40, 0.02)  # 40 ticks the client never sees live
        await proxy.open()
        await wait_for(lambda: service.accounting.total("backfilled") > 0, what="backfill", within_s=20)
        await source.run(20, 0.02)
        database = settings.influx.database
        await wait_for(
            lambda: len(points(influxd, database, "WHERE signal = 'pump_flow' AND seq > 0")) >= 80,
            within_s=20,
        )
    finally:
        stop.set()
        await task
        await source.stop()
    seqs = sorted(
        int(p["seq"])
        for p in points(influxd, settings.influx.database, "WHERE signal = 'pump_flow' AND seq > 0")
    )
    assert seqs == list(range(seqs[0], 81)), "every tick once: the cut's 40 among them"
    assert service.accounting.total("seq_gaps") == 0
    assert service.accounting.total("backfilled") >= 2 * 40


async def test_ticks_made_while_ingest_was_down_are_read_back_on_restart(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    source = OpcUaSource(free_port(), machines=1, signals=2, history=True)
    await source.start()
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={"endpoints": [source.endpoint]},
    )

    async def ingest_while(ticks: int) -> IngestService:
        service = IngestService(settings)
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))
        try:
            await wait_for(lambda: service.opcua[0].connected.is_set() if service.opcua else False)
            await source.run(ticks, 0.02)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await task
        return service

    try:
        await ingest_while(20)
        await source.run(40, 0.02)  # ingest is down: no client at all
        restarted = await ingest_while(20)
    finally:
        await source.stop()
    seqs = sorted(
        int(p["seq"])
        for p in points(influxd, settings.influx.database, "WHERE signal = 'pump_flow' AND seq > 0")
    )
    assert seqs == list(range(seqs[0], 81)), "every tick once, the 40 made while ingest was down among them"
    assert restarted.accounting.total("backfilled") >= 2 * 40


async def test_the_simulators_own_server_keeps_history_and_a_cut_is_backfilled(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    """``plant.opcua_history_s``: the simulated line's OPC UA server keeps history like the bench source."""
    port = free_port()
    proxy = Cut(port)
    await proxy.open()
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={
            "endpoints": [f"opc.tcp://127.0.0.1:{proxy.port}/linetwin"],
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 0.5,
        },
    )
    plant = settings.plant.model_copy(
        update={
            "opcua_endpoint": f"opc.tcp://127.0.0.1:{port}/linetwin",
            "opcua_history_s": 600.0,
            "speed": 20.0,
            "cycler_channels": 1,
            "ground_truth_file": tmp_path / "truth.jsonl",
        }
    )
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    connected = lambda: bool(service.opcua) and service.opcua[0].connected.is_set()  # noqa: E731
    database = settings.influx.database

    def ticks() -> list[int]:
        rows = points(influxd, database, "WHERE machine = 'coater1' AND signal = 'pump_flow' AND seq > 0")
        return sorted(int(p["seq"]) for p in rows)

    try:
        async with running(settings.model_copy(update={"plant": plant})):
            await wait_for(connected, what="OPC UA session")
            await wait_for(lambda: len(ticks()) >= 20, what="20 ticks live")
            await proxy.cut()
            await wait_for(lambda: not connected(), what="the cut noticed")
            await asyncio.sleep(2.0)  # about 40 ticks the client never sees live
            await proxy.open()
            await wait_for(lambda: service.accounting.total("backfilled") > 0, what="backfill", within_s=20)
            last = max(ticks())
            await wait_for(lambda: len(ticks()) >= last, what="every tick up to the reconnect", within_s=20)
    finally:
        stop.set()
        await task
    seqs = ticks()
    assert seqs == list(range(seqs[0], seqs[-1] + 1)), "every tick once, the cut's among them"
    assert service.accounting.total("seq_gaps") == 0
    assert service.accounting.total("backfilled") >= 10, "the cut lasted 2 s, at least 10 ticks at 20x"
