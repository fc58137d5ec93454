"""``twin bench ingest``: connector throughput against a raw no-op client, and ingest latency.

Real Mosquitto and influxd are started here (core.localservices). Each path is measured twice in the same
run, on the same source, so the ratio is fair:

- MQTT: N cycler messages are queued in the broker for a persistent session while the subscriber is
  away; then the subscriber connects and the clock runs until all are through. Raw = a paho client that
  only counts messages (QoS 1, automatic acks). Ingest = ``IngestService`` until every sample is
  *written to InfluxDB* (acks after the write). Two message shapes: ``--per-message`` records of one
  value each, and the simulated cyclers' own shape (one record of five values and a cell id).
- OPC UA: a synthetic server in its own process ticks as fast as it can; for a fixed time the raw
  asyncua client counts DataChange notifications of every item, then ingest counts samples written.
- Latency: source timestamp → InfluxDB write acknowledged, p50/p99, at a paced MQTT load and during
  the OPC UA run.
- CPU: what this process, the broker, the database and the OPC UA source spent per sample in each
  measurement (psutil), and from it the *ceiling*: the ratio a connector could reach on this machine if
  its own decoding and batching cost nothing, given that it must still receive like the raw client and
  the database must still take every point, all on ``os.cpu_count()`` cores.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import paho.mqtt.client as mqtt
import psutil
import typer
from asyncua import Client, ua
from asyncua.common.subscription import OverflowPolicy
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from rich.console import Console
from rich.table import Table

from bench.ingest_sources import CyclerSource
from connectors.opcua.discover import discover
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port, start_influxd, start_mosquitto
from core.settings import Settings

TOPICS = "+/formation/+/cycler1/+/+"
GOAL = 0.8  # issue 4: ingest at ≥ 0.8 of the raw client's rate


@dataclass(frozen=True)
class Cpu:
    """CPU seconds per sample during one measurement: this process and each local service."""

    own: float
    services: dict[str, float]


class CpuMeter:
    """CPU time of this process (every thread) and of the local services' processes over a window."""

    def __init__(self, services: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in services.items()}
        self.start()

    def start(self) -> None:
        self._own = time.process_time()
        self._services = {name: self._seconds(p) for name, p in self.processes.items()}

    def per_sample(self, samples: float) -> Cpu:
        own = time.process_time() - self._own
        services = {n: self._seconds(p) - self._services[n] for n, p in self.processes.items()}
        count = max(samples, 1.0)
        return Cpu(own / count, {n: seconds / count for n, seconds in services.items()})

    @staticmethod
    def _seconds(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)


@dataclass
class Result:
    path: str
    raw: float
    ingest: float
    p50_ms: float
    p99_ms: float
    samples: int
    raw_cpu: Cpu
    ingest_cpu: Cpu

    @property
    def ratio(self) -> float:
        return self.ingest / self.raw if self.raw else 0.0

    @property
    def own_work(self) -> float:
        """CPU seconds per sample the connector spends beyond receiving as the raw client does."""
        return self.ingest_cpu.own - self.raw_cpu.own

    def budget(self, ratio: float, processes: bool) -> float:
        """The most own work per sample (s) that still reaches ``ratio``: in one process its receive
        thread and its own work share one interpreter lock, so the two must fit one core's time per
        sample; split across processes they and the services must fit every core's."""
        wall = 1 / (ratio * self.raw)
        if not processes:
            return wall - self.raw_cpu.own
        cores = os.cpu_count() or 1
        return cores * wall - self.raw_cpu.own - sum(self.ingest_cpu.services.values())

    @property
    def ceiling(self) -> float:
        """The best ratio on this machine for a connector whose own work were free.

        It must still receive as the raw client does (one thread: at most the raw rate), and the
        database, the broker and the source must still do what they did in the ingest run; all share
        ``os.cpu_count()`` cores. The bound is seconds of wall time per sample at least
        max(receive, (receive + services) / cores).
        """
        receive = self.raw_cpu.own
        needed = max(receive, (receive + sum(self.ingest_cpu.services.values())) / (os.cpu_count() or 1))
        return (1 / needed) / self.raw if needed > 0 and self.raw else float("nan")


class Latencies:
    """Collects source-timestamp → written latencies from the writer's hook."""

    def __init__(self) -> None:
        self.values: list[np.ndarray] = []
        self.enabled = True

    def __call__(self, written_ns: int, source_ns: list[int]) -> None:
        if self.enabled and source_ns:
            self.values.append(written_ns - np.asarray(source_ns, dtype=np.int64))

    def percentiles(self) -> tuple[float, float]:
        if not self.values:
            return float("nan"), float("nan")
        all_ms = np.concatenate(self.values) / 1e6
        return float(np.percentile(all_ms, 50)), float(np.percentile(all_ms, 99))


async def _until(condition: Callable[[], bool]) -> None:
    """Poll a counter or flag owned by another thread (no event to wait on)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.01)


def _settings(mosquitto: Mosquitto, influxd: Influxd, spool: Path, **ingest: Any) -> Settings:
    database = f"bench{free_port()}"
    influxd.create_database(database)
    return Settings.model_validate(
        {
            "mqtt": {
                "host": mosquitto.host,
                "port": mosquitto.port,
                "client_id_prefix": f"bench{free_port()}",
            },
            "influx": {"url": influxd.url, "database": database, "spool_dir": str(spool)},
            "ingest": {"metrics_port": None, "bus_enabled": False, **ingest},
        }
    )


@dataclass(frozen=True)
class Shape:
    """What one MQTT message carries: ``records`` JSON records of ``signals`` values each."""

    records: int
    signals: int

    @property
    def samples(self) -> int:
        return self.records * self.signals

    def label(self) -> str:
        if self == CYCLER_SHAPE:
            return "MQTT (JSON, cycler shape: 1 record × 5 values) → InfluxDB"
        return f"MQTT (JSON, {self.records} records × {self.signals} value) → InfluxDB"


CYCLER_SHAPE = Shape(1, 5)


def _queue_messages(mosquitto: Mosquitto, messages: int, shape: Shape, run: str) -> int:
    source = CyclerSource(
        mosquitto.host, mosquitto.port, channels=16, per_message=shape.records, run=run, signals=shape.signals
    )
    for _ in range(messages // 16):
        source.publish_round()
    source.close()
    return source.published


def _raw_mqtt(mosquitto: Mosquitto, messages: int, shape: Shape, meter: CpuMeter) -> tuple[float, Cpu]:
    """A paho subscriber that does nothing but count: the ceiling for any MQTT connector in Python."""
    received = 0
    done = threading.Event()
    subscribed = threading.Event()
    expected = messages // 16 * 16

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == expected:
            done.set()

    client_id = f"bench-raw-{free_port()}"  # a fresh session: an earlier run's backlog must not count

    def client() -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_message = on_message
        c.on_subscribe = lambda *args: subscribed.set()
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        c.connect(mosquitto.host, mosquitto.port, clean_start=False, properties=properties)
        return c

    first = client()
    first.subscribe(TOPICS, qos=1)
    first.loop_start()
    subscribed.wait(10)
    first.disconnect()
    first.loop_stop()
    samples = _queue_messages(mosquitto, messages, shape, "raw")
    meter.start()
    start = time.perf_counter()
    second = client()
    second.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - start
    cpu = meter.per_sample(samples)
    second.disconnect()
    second.loop_stop()
    return samples / elapsed, cpu


async def _ingest_mqtt(
    mosquitto: Mosquitto, influxd: Influxd, spool: Path, messages: int, shape: Shape, meter: CpuMeter
) -> tuple[float, Latencies, Cpu]:
    settings = _settings(mosquitto, influxd, spool, opcua_enabled=False)
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await _until(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set())
    stop.set()
    await task
    samples = await asyncio.to_thread(_queue_messages, mosquitto, messages, shape, "ingest")
    service = IngestService(settings)
    stop = asyncio.Event()
    meter.start()
    start = time.perf_counter()
    task = asyncio.create_task(service.run(stop))
    await _until(lambda: service.accounting.total("written") >= samples)
    elapsed = time.perf_counter() - start
    cpu = meter.per_sample(samples)
    latencies = Latencies()
    assert service.writer is not None
    service.writer.on_written = latencies
    paced = CyclerSource(
        mosquitto.host,
        mosquitto.port,
        channels=16,
        per_message=shape.records,
        run="paced",
        signals=shape.signals,
    )
    for _ in range(50):
        paced.publish_round()
        await asyncio.sleep(0.04)
    paced.close()
    target = samples + paced.published
    await _until(lambda: service.accounting.total("written") >= target)
    stop.set()
    await task
    return samples / elapsed, latencies, cpu


async def _raw_opcua(endpoint: str, seconds: float, meter: CpuMeter) -> tuple[float, Cpu]:
    """An asyncua client whose subscription only counts DataChange notifications."""
    client = Client(endpoint, timeout=10)
    await client.connect()
    try:
        machines = await discover(client)
        nodes = [client.get_node(tag.node) for m in machines for tag in m.tags]
        subscription = await client.create_subscription(
            100, queue_maxsize=10_000_000, overflow=OverflowPolicy.DISCONNECT
        )
        await subscription.subscribe_data_change(nodes, queuesize=1000, sampling_interval=ua.Duration(0.0))
        count = 0
        await asyncio.sleep(1.0)
        meter.start()
        deadline = time.perf_counter() + seconds
        while (remaining := deadline - time.perf_counter()) > 0:
            if await subscription.next_event(timeout=remaining) is not None:
                count += 1
        return count / seconds, meter.per_sample(count)
    finally:
        await client.disconnect()


async def _ingest_opcua(
    endpoint: str, mosquitto: Mosquitto, influxd: Influxd, spool: Path, seconds: float, meter: CpuMeter
) -> tuple[float, Latencies, Cpu]:
    settings = _settings(mosquitto, influxd, spool, mqtt_enabled=False)
    settings.opcua.endpoints = [endpoint]
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await _until(lambda: bool(service.opcua) and service.opcua[0].connected.is_set())
    await asyncio.sleep(1.0)
    latencies = Latencies()
    assert service.writer is not None
    service.writer.on_written = latencies
    before = service.accounting.total("written")
    meter.start()
    await asyncio.sleep(seconds)
    written = service.accounting.total("written") - before
    cpu = meter.per_sample(written)
    stop.set()
    await task
    return written / seconds, latencies, cpu


def _opcua_source(port: int, machines: int, signals: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.ingest_sources", "opcua", "--port", str(port)]
    command += ["--machines", str(machines), "--signals", str(signals), "--interval", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    json.loads(process.stdout.readline())
    return process


def _pid(service: Mosquitto | Influxd) -> int:
    assert service.process is not None
    return service.process.pid


async def run(messages: int = 4000, per_message: int = 10, opcua_seconds: float = 8.0) -> list[Result]:
    """Run both paths (MQTT in two message shapes) and return one result per row."""
    mosquitto, influxd = start_mosquitto(), start_influxd()
    workdir = Path(tempfile.mkdtemp(prefix="lt-bench-"))
    try:
        results = []
        services = {"broker": _pid(mosquitto), "database": _pid(influxd)}
        for n, shape in enumerate((Shape(per_message, 1), CYCLER_SHAPE)):
            meter = CpuMeter(services)
            raw_mqtt, raw_cpu = await asyncio.to_thread(_raw_mqtt, mosquitto, messages, shape, meter)
            ingest_mqtt, mqtt_latency, ingest_cpu = await _ingest_mqtt(
                mosquitto, influxd, workdir / f"m{n}", messages, shape, meter
            )
            samples = messages // 16 * 16 * shape.samples
            results.append(
                Result(
                    shape.label(),
                    raw_mqtt,
                    ingest_mqtt,
                    *mqtt_latency.percentiles(),
                    samples,
                    raw_cpu,
                    ingest_cpu,
                )
            )
        port = free_port()
        source = _opcua_source(port, machines=2, signals=25)
        try:
            meter = CpuMeter(services | {"source": source.pid})
            endpoint = f"opc.tcp://127.0.0.1:{port}/bench"
            raw_opcua, raw_cpu = await _raw_opcua(endpoint, opcua_seconds, meter)
            ingest_opcua, opcua_latency, ingest_cpu = await _ingest_opcua(
                endpoint, mosquitto, influxd, workdir / "s2", opcua_seconds, meter
            )
        finally:
            source.kill()
            source.wait()
        return [
            *results,
            Result(
                "OPC UA → InfluxDB",
                raw_opcua,
                ingest_opcua,
                *opcua_latency.percentiles(),
                int(ingest_opcua * opcua_seconds),
                raw_cpu,
                ingest_cpu,
            ),
        ]
    finally:
        mosquitto.cleanup()
        influxd.cleanup()


def ingest_command(
    messages: Annotated[int, typer.Option(help="MQTT messages queued per measurement")] = 24000,
    per_message: Annotated[
        int,
        typer.Option(
            help="JSON records (one sample each) per MQTT message; a second row is always the cycler shape"
        ),
    ] = 10,
    seconds: Annotated[float, typer.Option(help="OPC UA measurement time per client")] = 8.0,
) -> None:
    """Connector throughput per process against raw no-op clients, and ingest latency."""
    results = asyncio.run(run(messages, per_message, seconds))
    table = Table(title="twin bench ingest (one process each; real Mosquitto and influxd on this machine)")
    for column in ("path", "raw client samples/s", "ingest samples/s", "ratio", "latency p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for r in results:
        table.add_row(
            r.path,
            f"{r.raw:,.0f}",
            f"{r.ingest:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.p50_ms:.0f}",
            f"{r.p99_ms:.0f}",
        )
    console = Console(width=150)
    console.print(table)
    console.print(cpu_table(results))


def cpu_table(results: list[Result]) -> Table:
    """Where each path's CPU goes, per sample, and the ratio ceiling that follows on this machine."""
    cores = os.cpu_count() or 1
    table = Table(
        title=f"CPU per sample in the same runs (µs; {cores} cores shared by every process)",
        caption=(
            "ceiling: the best ratio for a connector whose own decoding, batching and writing were free: "
            "it still receives like the raw client, and the services still do what they did for ingest. "
            "own work: ingest process − raw client. budget: the own work per sample that would still "
            f"reach a ratio of {GOAL:g}, in one process (receiving and own work share the interpreter "
            "lock) or split over processes (all of it and the services share the cores)"
        ),
    )
    columns = (
        "path",
        "raw client",
        "ingest process",
        "broker",
        "database",
        "source",
        "ceiling",
        "own work",
        f"budget at {GOAL:g}: one process / several",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "path" else "right")
    for r in results:
        services = r.ingest_cpu.services
        table.add_row(
            r.path,
            f"{r.raw_cpu.own * 1e6:.1f}",
            f"{r.ingest_cpu.own * 1e6:.1f}",
            f"{services['broker'] * 1e6:.1f}",
            f"{services['database'] * 1e6:.1f}",
            f"{services['source'] * 1e6:.1f}" if "source" in services else "–",
            f"{r.ceiling:.2f}",
            f"{r.own_work * 1e6:.1f}",
            f"{r.budget(GOAL, False) * 1e6:.1f} / {r.budget(GOAL, True) * 1e6:.1f}",
        )
    return table
