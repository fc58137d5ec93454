"""Outages with real processes: InfluxDB and Mosquitto stopped or killed, the ingest process killed -9.

After recovery InfluxDB holds every sample the source produced, proven by (channel, seq), and the spool
is empty.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from bench.ingest_sources import CyclerSource, OpcUaSource
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port, port_open, start_influxd, start_mosquitto
from core.metricstext import scrape
from tests.integration.ingest_support import count, ingest_settings, points, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def own_influxd() -> Iterator[Influxd]:
    service = start_influxd()
    yield service
    service.cleanup()


@pytest.fixture
def own_mosquitto() -> Iterator[Mosquitto]:
    service = start_mosquitto()
    yield service
    service.cleanup()


def _seqs(influxd: Influxd, database: str) -> dict[str, list[int]]:
    seqs: dict[str, list[int]] = {}
    for row in points(influxd, database):
        seqs.setdefault(row["channel"], []).append(row["seq"])
    return {channel: sorted(values) for channel, values in seqs.items()}


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_influxdb_outage_spools_and_replays_every_sample(
    tmp_path: Path, mosquitto: Mosquitto, own_influxd: Influxd, outage: str
) -> None:
    settings = ingest_settings(tmp_path, mosquitto, own_influxd)
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")
    source = CyclerSource(mosquitto.host, mosquitto.port, channels=4, per_message=10, run=outage)
    for _ in range(5):
        source.publish_round()
    database = settings.influx.database
    await wait_for(lambda: count(own_influxd, database) == 200, what="200 points before the outage")
    getattr(own_influxd, outage)()
    for _ in range(5):
        source.publish_round()
    source.close()
    await wait_for(lambda: service.accounting.total("spooled") == 200, what="200 samples spooled")
    assert service.writer is not None and len(service.writer.spool) > 0
    own_influxd.start()
    await wait_for(lambda: service.writer is not None and not len(service.writer.spool), what="spool drained")
    assert _seqs(own_influxd, database) == {f"ch{c:02d}": list(range(100)) for c in range(1, 5)}
    assert service.accounting.total("replayed") == 200
    assert service.accounting.total("seq_gaps") == 0
    stop.set()
    await task


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_mosquitto_outage_loses_nothing_produced_while_connected(
    tmp_path: Path, own_mosquitto: Mosquitto, influxd: Influxd, outage: str
) -> None:
    settings = ingest_settings(tmp_path, own_mosquitto, influxd)
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    assert_connected = lambda: service.mqtt is not None and service.mqtt.subscribed.is_set()  # noqa: E731
    await wait_for(assert_connected, what="subscription")
    source = CyclerSource(own_mosquitto.host, own_mosquitto.port, channels=2, per_message=10, run=outage)
    for _ in range(5):
        source.publish_round()
    database = settings.influx.database
    await wait_for(lambda: count(influxd, database) == 100, what="100 points before the outage")
    getattr(own_mosquitto, outage)()
    await wait_for(lambda: not assert_connected(), what="loss detected")
    own_mosquitto.start()
    await wait_for(assert_connected, what="resubscribed", within_s=30)
    await wait_for(source.client.is_connected, what="publisher back", within_s=30)
    for _ in range(5):
        source.publish_round()
    source.close()
    await wait_for(lambda: count(influxd, database) == 200, what="200 points after the outage")
    assert _seqs(influxd, database) == {"ch01": list(range(100)), "ch02": list(range(100))}
    assert not task.done()
    stop.set()
    await task


def _config(path: Path, mosquitto: Mosquitto, influxd: Influxd, database: str, metrics_port: int) -> Path:
    path.write_text(
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nclient_id_prefix = "kill9"\n'
        f'[influx]\nurl = "{influxd.url}"\ndatabase = "{database}"\nspool_dir = "{path.parent / "spool"}"\n'
        "flush_interval_ms = 300\nretry_max_s = 0.5\ntimeout_s = 2.0\n"
        f"[ingest]\nopcua_enabled = false\nmetrics_port = {metrics_port}\n"
    )
    return path


async def _ingest_process(config: Path, metrics_port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``twin ingest`` as a process, once its metrics answer and its subscription stands."""
    twin = str(Path(sys.executable).with_name("twin"))
    process = subprocess.Popen([twin, "--config", str(config), "ingest"], stderr=log)  # noqa: ASYNC220
    await wait_for(lambda: port_open("127.0.0.1", metrics_port), what="ingest up", within_s=30)
    await asyncio.sleep(1.5)
    return process


async def test_kill_9_of_the_ingest_process_mid_batch_loses_nothing_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, own_influxd: Influxd
) -> None:
    database = "kill9"
    own_influxd.create_database(database)
    metrics_port = free_port()
    config = _config(tmp_path / "linetwin.toml", mosquitto, own_influxd, database, metrics_port)
    log = (tmp_path / "ingest.log").open("ab")

    ingest = await _ingest_process(config, metrics_port, log)
    try:
        source = CyclerSource(mosquitto.host, mosquitto.port, channels=4, per_message=25, run="kill9")
        own_influxd.stop()
        for _ in range(5):
            source.publish_round()
        spool = tmp_path / "spool"
        await wait_for(lambda: any(spool.glob("*.lp")), what="a spooled batch")
        for _ in range(5):
            source.publish_round()
        source.close()
        os.kill(ingest.pid, signal.SIGKILL)
        ingest.wait()
        own_influxd.start()
        ingest = await _ingest_process(config, metrics_port, log)
        await wait_for(lambda: count(own_influxd, database) == 1000, what="1000 points", within_s=60)
        await wait_for(lambda: not any(spool.glob("*.lp")), what="empty spool")
        assert _seqs(own_influxd, database) == {f"ch{c:02d}": list(range(250)) for c in range(1, 5)}
    finally:
        ingest.terminate()
        ingest.wait(10)


def _counted_missing(metrics_port: int) -> dict[str, float]:
    """Per channel, what the ingest counts as never delivered: sequence gaps less late arrivals."""
    counts: dict[str, float] = {}
    for sample in scrape(f"http://127.0.0.1:{metrics_port}/metrics"):
        sign = {"linetwin_ingest_seq_gaps_total": 1, "linetwin_ingest_late_total": -1}.get(sample.name)
        if sign:
            channel = sample.labels["source"].rpartition("/")[2]
            counts[channel] = counts.get(channel, 0) + sign * sample.value
    return counts


@pytest.mark.parametrize("published", ["before the broker's kill", "after its restart"])
async def test_what_the_broker_loses_while_ingest_is_down_too_is_a_counted_gap(
    tmp_path: Path, own_mosquitto: Mosquitto, influxd: Influxd, published: str
) -> None:
    """Mosquitto acknowledges a QoS 1 publish before it saves it (every second): killed -9 while ingest
    is down, it loses what it held for ingest. The restarted ingest must count that loss. What is
    published once the broker is back is queued for ingest's restored session and lost never."""
    database = "brokerloss_" + published.split()[0]
    influxd.create_database(database)
    metrics_port = free_port()
    config = _config(tmp_path / "linetwin.toml", own_mosquitto, influxd, database, metrics_port)
    log = (tmp_path / "ingest.log").open("ab")

    ingest = await _ingest_process(config, metrics_port, log)
    source = CyclerSource(own_mosquitto.host, own_mosquitto.port, channels=2, run="brokerloss")
    try:
        for _ in range(20):
            source.publish_round()
        await wait_for(lambda: count(influxd, database) == 40, what="the first 40 points")
        await asyncio.sleep(1.5)  # the sequence file is written at most once a second
        os.kill(ingest.pid, signal.SIGKILL)
        ingest.wait()
        if published == "after its restart":
            own_mosquitto.kill()
            own_mosquitto.start()
            await wait_for(source.client.is_connected, what="the publisher back on the broker")
        for _ in range(20):
            info = source.publish_round()
        info.wait_for_publish(30)  # the broker has acknowledged them all
        if published == "before the broker's kill":
            own_mosquitto.kill()  # before its next save, as a rule
            own_mosquitto.start()
        ingest = await _ingest_process(config, metrics_port, log)
        for _ in range(5):
            source.publish_round()
        await wait_for(lambda: all(s[-1] == 44 for s in _seqs(influxd, database).values()), what="seq 44")
        stored = _seqs(influxd, database)
        missing = {channel: len(set(range(45)) - set(seqs)) for channel, seqs in stored.items()}
        counted = _counted_missing(metrics_port)
        print(f"published {published}: lost {missing}, counted {counted}")
        assert {channel: counted.get(channel, 0.0) for channel in missing} == missing, f"lost: {missing}"
        if published == "after its restart":
            assert not any(missing.values()), f"lost: {missing}"
    finally:
        source.close()
        ingest.terminate()
        ingest.wait(10)


async def test_ingest_is_back_within_a_second_of_a_broker_returning_after_a_long_outage(
    tmp_path: Path, own_mosquitto: Mosquitto, influxd: Influxd
) -> None:
    """8 s down doubles the back-off to 8 s; the port probe cuts the wait short once the broker is back."""
    settings = ingest_settings(tmp_path, own_mosquitto, influxd)
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    connected = lambda: service.mqtt is not None and service.mqtt.subscribed.is_set()  # noqa: E731
    await wait_for(connected, what="subscription")
    own_mosquitto.kill()
    await wait_for(lambda: not connected(), what="loss detected")
    await asyncio.sleep(8.0)  # attempts at 1, 2, 4 s back-off fail; the next wait is 8 s
    own_mosquitto.start()
    back = time.monotonic()
    await wait_for(connected, what="resubscribed", within_s=10)
    assert time.monotonic() - back < 1.5
    stop.set()
    await task


async def test_opcua_is_back_within_a_second_of_the_server_returning_after_a_long_outage(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    source = OpcUaSource(free_port(), machines=1, signals=2)
    await source.start()
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False},
        opcua={"endpoints": [source.endpoint], "reconnect_min_s": 0.5, "reconnect_max_s": 30.0},
    )
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    connected = lambda: bool(service.opcua) and service.opcua[0].connected.is_set()  # noqa: E731
    await wait_for(connected, what="OPC UA session")
    await source.stop()
    await wait_for(lambda: not connected(), what="loss detected")
    await asyncio.sleep(8.0)  # the back-off has doubled well past a second
    await source.start()
    back = time.monotonic()
    await wait_for(connected, what="new session", within_s=15)
    assert time.monotonic() - back < 1.5
    stop.set()
    await task
    await source.stop()
