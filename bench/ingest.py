"""``twin bench ingest``: connector throughput against a raw no-op client, and ingest latency.

Real Mosquitto and influxd are started here (core.localservices). Each path is measured twice in the same
run, on the same source, so the ratio is fair:

- MQTT: N cycler messages are queued in the broker for a persistent session while the subscriber is
  away; then the subscriber connects and the clock runs until all are through. Raw = a paho client that
  only counts messages (QoS 1, automatic acks). Ingest = ``IngestService`` until every full batch is
  *written to InfluxDB* (acks after the write); the last, part-filled batch waits for the flush interval,
  which is latency (measured below), not throughput. Two message shapes: ``--per-message`` records of one
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

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
from connectors.mqtt.aioloop import AsyncioNetwork
from connectors.mqtt.bufferedsocket import BufferedClient
from connectors.mqtt.client import RECONNECT_MAX_S, RECONNECT_MIN_S
from connectors.opcua.discover import discover
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port, start_influxd, start_mosquitto
from core.settings import Settings

TOPICS = f"{Settings().namespace().step('cycler1')}/+/+"
#: Cycler channels the MQTT source publishes on; a burst is whole rounds of one message per channel.
CHANNELS = 16
GOAL = 0.8  # issue 4: ingest at ≥ 0.8 of the raw client's rate

ClientT = TypeVar("ClientT", bound=mqtt.Client)


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU time a process has spent so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class Cpu:
    """CPU seconds per sample during one measurement: this process and each local service."""

    own: float
    services: dict[str, float]

    @staticmethod
    def mean(readings: list[Cpu]) -> Cpu:
        names = readings[0].services
        return Cpu(
            statistics.fmean(r.own for r in readings),
            {n: statistics.fmean(r.services[n] for r in readings) for n in names},
        )


class CpuMeter:
    """CPU time of this process (every thread) and of the local services' processes over a window."""

    def __init__(self, services: dict[str, int]) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in services.items()}
        self.start()

    def start(self) -> None:
        self._own = time.process_time()
        self._services = {name: cpu_seconds(p) for name, p in self.processes.items()}

    def per_sample(self, samples: float) -> Cpu:
        own = time.process_time() - self._own
        services = {n: cpu_seconds(p) - self._services[n] for n, p in self.processes.items()}
        count = max(samples, 1.0)
        return Cpu(own / count, {n: seconds / count for n, seconds in services.items()})


@dataclass
class Result:
    """One path's figures. ``raw`` is the library's usual no-op subscriber (paho's loop thread; asyncua);
    for MQTT, ``raw_loop`` is the same no-op subscriber read the way ingest reads, on the asyncio loop
    (``connectors.mqtt.aioloop``) through a buffered socket, so ``ingest / raw_loop`` is what the
    connector's own work costs."""

    path: str
    raw: float
    ingest: float
    p50_ms: float
    p99_ms: float
    samples: int
    raw_cpu: Cpu
    ingest_cpu: Cpu
    raw_loop: float | None = None
    raw_loop_cpu: Cpu | None = None
    #: Median of paired rounds' ratios, when measured in rounds (else the ratio of the two rates).
    paired_ratio: float | None = None
    paired_loop_ratio: float | None = None

    @property
    def ratio(self) -> float:
        if self.paired_ratio is not None:
            return self.paired_ratio
        return self.ingest / self.raw if self.raw else 0.0

    @property
    def loop_ratio(self) -> float | None:
        if self.paired_loop_ratio is not None:
            return self.paired_loop_ratio
        return self.ingest / self.raw_loop if self.raw_loop else None

    @property
    def receive(self) -> float:
        """CPU seconds per sample to receive as ingest does, before any work of its own."""
        return (self.raw_loop_cpu or self.raw_cpu).own

    @property
    def own_work(self) -> float:
        """CPU seconds per sample the connector spends beyond receiving."""
        return self.ingest_cpu.own - self.receive

    def budget(self, ratio: float, processes: bool) -> float:
        """The most own work per sample (s) that still reaches ``ratio`` of the raw client's rate: in
        one process receiving and own work share one interpreter lock, so the two must fit one core's
        time per sample; split across processes they and the services must fit every core's."""
        wall = 1 / (ratio * self.raw)
        if not processes:
            return wall - self.receive
        cores = os.cpu_count() or 1
        return cores * wall - self.receive - sum(self.ingest_cpu.services.values())

    @property
    def ceiling(self) -> float:
        """The best ratio on this machine for a connector whose own work were free.

        It must still receive as ingest does (one thread), and the database, the broker and the source
        must still do what they did in the ingest run; all share ``os.cpu_count()`` cores. The bound
        is seconds of wall time per sample at least max(receive, (receive + services) / cores).
        """
        receive = self.receive
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
            # the bench's OPC UA source and its raw client run without security: so does the connector
            "opcua": {"security_policy": "None", "security_mode": "None"},
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

    def source(self, mosquitto: Mosquitto, run: str, root: str | None = None) -> CyclerSource:
        """A publisher of messages of this shape on every channel (under ``root``, default the built-in
        line's cycler)."""
        return CyclerSource(
            mosquitto.host,
            mosquitto.port,
            channels=CHANNELS,
            per_message=self.records,
            run=run,
            signals=self.signals,
            root=root,
        )

    def label(self) -> str:
        if self == CYCLER_SHAPE:
            return "MQTT (JSON, cycler shape: 1 record × 5 values) → InfluxDB"
        return f"MQTT (JSON, {self.records} records × {self.signals} value) → InfluxDB"


CYCLER_SHAPE = Shape(1, 5)


def _whole_rounds(messages: int) -> int:
    """The messages of a burst of about ``messages``: whole rounds over the channels."""
    return messages // CHANNELS * CHANNELS


def _queue_messages(mosquitto: Mosquitto, messages: int, shape: Shape, run: str) -> int:
    source = shape.source(mosquitto, run)
    for _ in range(messages // CHANNELS):
        source.publish_round()
    source.close()
    return source.published


def _raw_client(mosquitto: Mosquitto, client_id: str, kind: type[ClientT]) -> ClientT:
    """A no-op subscriber's client: QoS 1 with automatic acks, a persistent session. ``kind`` is paho's
    client, or the ``BufferedClient`` ingest reads its socket with."""
    client = kind(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect_async(mosquitto.host, mosquitto.port, clean_start=False, properties=properties)
    return client


def _raw_backlog(mosquitto: Mosquitto, messages: int, shape: Shape) -> tuple[str, int]:
    """A fresh session that subscribed and left, with ``messages`` queued for it: (client id, samples)."""
    client_id = f"bench-raw-{free_port()}"  # fresh: an earlier run's backlog must not count
    subscribed = threading.Event()
    client = _raw_client(mosquitto, client_id, mqtt.Client)
    client.on_connect = lambda c, *args: c.subscribe(TOPICS, qos=1)
    client.on_subscribe = lambda *args: subscribed.set()
    client.loop_start()
    subscribed.wait(10)
    client.disconnect()
    client.loop_stop()
    return client_id, _queue_messages(mosquitto, messages, shape, "raw")


def _counting(
    expected: int, done: Callable[[], object]
) -> Callable[[mqtt.Client, object, mqtt.MQTTMessage], None]:
    """A no-op subscriber's on_message: count, and call ``done`` at the ``expected``-th message."""
    received = 0

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal received
        received += 1
        if received == expected:
            done()

    return on_message


def _raw_mqtt(mosquitto: Mosquitto, messages: int, shape: Shape, meter: CpuMeter) -> tuple[float, Cpu]:
    """paho's usual no-op subscriber (its loop thread, its socket reads): what the issue's goal is set
    against."""
    client_id, samples = _raw_backlog(mosquitto, messages, shape)
    done = threading.Event()
    meter.start()
    start = time.perf_counter()
    client = _raw_client(mosquitto, client_id, mqtt.Client)
    client.on_message = _counting(_whole_rounds(messages), done.set)
    client.loop_start()
    done.wait(300)
    elapsed = time.perf_counter() - start
    cpu = meter.per_sample(samples)
    client.disconnect()
    client.loop_stop()
    return samples / elapsed, cpu


async def _raw_mqtt_loop(
    mosquitto: Mosquitto, messages: int, shape: Shape, meter: CpuMeter
) -> tuple[float, Cpu]:
    """The same no-op subscriber read as ingest reads: on the asyncio loop (``AsyncioNetwork``), its socket
    through ``BufferedSocket``."""
    client_id, samples = await asyncio.to_thread(_raw_backlog, mosquitto, messages, shape)
    done = asyncio.Event()
    meter.start()
    start = time.perf_counter()
    client = _raw_client(mosquitto, client_id, BufferedClient)
    client.on_message = _counting(_whole_rounds(messages), done.set)
    network = AsyncioNetwork(client, RECONNECT_MIN_S, RECONNECT_MAX_S)
    network.start()
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - start
    cpu = meter.per_sample(samples)
    await network.stop()
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
    full_batches = samples - settings.influx.batch_size
    await _until(lambda: service.accounting.total("written") >= full_batches)
    elapsed = time.perf_counter() - start
    written = service.accounting.total("written")
    cpu = meter.per_sample(written)
    await _until(lambda: service.accounting.total("written") >= samples)
    latencies = Latencies()
    assert service.writer is not None
    service.writer.on_written = latencies
    paced = shape.source(mosquitto, "paced")
    for _ in range(50):
        paced.publish_round()
        await asyncio.sleep(0.04)
    paced.close()
    target = samples + paced.published
    await _until(lambda: service.accounting.total("written") >= target)
    stop.set()
    await task
    # its compactions would take CPU from the next measurements
    await asyncio.to_thread(influxd.drop_database, settings.influx.database)
    return written / elapsed, latencies, cpu


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
    await asyncio.to_thread(influxd.drop_database, settings.influx.database)
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


@dataclass
class Rounds:
    """One client's measurements, a (samples/s, CPU) pair per round."""

    measured: list[tuple[float, Cpu]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(r for r, _ in self.measured)

    @property
    def cpu(self) -> Cpu:
        return Cpu.mean([c for _, c in self.measured])

    def ratio_to(self, other: Rounds) -> float:
        """The median of the rounds' own ratios: each round's clients ran back to back."""
        return statistics.median(
            mine / theirs for (mine, _), (theirs, _) in zip(self.measured, other.measured, strict=True)
        )


async def _mqtt_rounds(
    mosquitto: Mosquitto, influxd: Influxd, workdir: Path, messages: int, shape: Shape, rounds: int
) -> Result:
    """Raw, raw on the loop and ingest back to back, ``rounds`` times. A burst's rate on this shared
    machine varies by up to ±30 % from one minute to the next for every client alike, so each rate is
    the median of its rounds, the ratio the median of the rounds' own ratios, each CPU figure the mean."""
    services = {"broker": _pid(mosquitto), "database": _pid(influxd)}
    raw, raw_loop, ingest = Rounds(), Rounds(), Rounds()
    latency = Latencies()
    for n in range(rounds):
        meter = CpuMeter(services)
        raw.measured.append(await asyncio.to_thread(_raw_mqtt, mosquitto, messages, shape, meter))
        raw_loop.measured.append(await _raw_mqtt_loop(mosquitto, messages, shape, meter))
        rate, round_latency, cpu = await _ingest_mqtt(
            mosquitto, influxd, workdir / f"{shape.records}x{shape.signals}-{n}", messages, shape, meter
        )
        ingest.measured.append((rate, cpu))
        latency.values += round_latency.values
    return Result(
        shape.label(),
        raw.rate,
        ingest.rate,
        *latency.percentiles(),
        _whole_rounds(messages) * shape.samples,
        raw.cpu,
        ingest.cpu,
        raw_loop.rate,
        raw_loop.cpu,
        ingest.ratio_to(raw),
        ingest.ratio_to(raw_loop),
    )


async def _opcua_rounds(
    mosquitto: Mosquitto, influxd: Influxd, workdir: Path, seconds: float, rounds: int
) -> Result:
    """The raw asyncua subscription and ingest back to back, ``rounds`` times, against one source:
    medians of the rates and of the rounds' own ratios, as for MQTT."""
    port = free_port()
    source = _opcua_source(port, machines=2, signals=25)
    endpoint = f"opc.tcp://127.0.0.1:{port}/bench"
    services = {"broker": _pid(mosquitto), "database": _pid(influxd), "source": source.pid}
    raw, ingest = Rounds(), Rounds()
    latency = Latencies()
    try:
        for n in range(rounds):
            meter = CpuMeter(services)
            raw.measured.append(await _raw_opcua(endpoint, seconds, meter))
            rate, round_latency, cpu = await _ingest_opcua(
                endpoint, mosquitto, influxd, workdir / f"opcua-{n}", seconds, meter
            )
            ingest.measured.append((rate, cpu))
            latency.values += round_latency.values
    finally:
        source.kill()
        source.wait()
    return Result(
        "OPC UA → InfluxDB",
        raw.rate,
        ingest.rate,
        *latency.percentiles(),
        int(ingest.rate * seconds),
        raw.cpu,
        ingest.cpu,
        paired_ratio=ingest.ratio_to(raw),
    )


async def run(
    messages: int = 4000, per_message: int = 10, opcua_seconds: float = 8.0, rounds: int = 1
) -> list[Result]:
    """Run both paths (MQTT in two message shapes) and return one result per row."""
    mosquitto, influxd = start_mosquitto(), start_influxd()
    workdir = Path(tempfile.mkdtemp(prefix="lt-bench-"))
    try:
        results = [
            await _mqtt_rounds(mosquitto, influxd, workdir, messages, shape, rounds)
            for shape in (Shape(per_message, 1), CYCLER_SHAPE)
        ]
        return [*results, await _opcua_rounds(mosquitto, influxd, workdir, opcua_seconds, rounds)]
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
    seconds: Annotated[float, typer.Option(help="OPC UA measurement time per client and round")] = 8.0,
    rounds: Annotated[
        int, typer.Option(min=1, help="Measurements per client and path; medians are shown")
    ] = 5,
) -> None:
    """Connector throughput per process against raw no-op clients, and ingest latency."""
    results = asyncio.run(run(messages, per_message, seconds, rounds))
    table = Table(
        title="twin bench ingest (one process each; real Mosquitto and influxd on this machine)",
        caption=(
            "raw client: paho's loop thread, asyncua's subscription; ratio = ingest / raw client "
            "(median of the rounds' ratios, each round's clients measured back to back). "
            "raw on loop: the same no-op paho subscriber read on the asyncio loop as ingest reads it; "
            "ratio to it = what the connector's own work costs"
        ),
    )
    columns = (
        "path",
        "raw client samples/s",
        "raw on loop",
        "ingest samples/s",
        "ratio",
        "ratio to raw on loop",
        "latency p50 ms",
        "p99 ms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "path" else "right")
    for r in results:
        table.add_row(
            r.path,
            f"{r.raw:,.0f}",
            "–" if r.raw_loop is None else f"{r.raw_loop:,.0f}",
            f"{r.ingest:,.0f}",
            f"{r.ratio:.2f}",
            "–" if r.loop_ratio is None else f"{r.loop_ratio:.2f}",
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
            "ceiling: the best ratio to the raw client for a connector whose own decoding, batching and "
            "writing were free: it still receives as ingest does, and the services still do what they "
            "did for ingest. own work: ingest process − raw on loop (MQTT) or raw client (OPC UA). "
            f"budget: the own work per sample that would still reach a ratio of {GOAL:g}, in one process "
            "(receiving and own work share the interpreter lock) or split over processes (all of it "
            "and the services share the cores)"
        ),
    )
    columns = (
        "path",
        "raw client",
        "raw on loop",
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
            "–" if r.raw_loop_cpu is None else f"{r.raw_loop_cpu.own * 1e6:.1f}",
            f"{r.ingest_cpu.own * 1e6:.1f}",
            f"{services['broker'] * 1e6:.1f}",
            f"{services['database'] * 1e6:.1f}",
            f"{services['source'] * 1e6:.1f}" if "source" in services else "–",
            f"{r.ceiling:.2f}",
            f"{r.own_work * 1e6:.1f}",
            f"{r.budget(GOAL, False) * 1e6:.1f} / {r.budget(GOAL, True) * 1e6:.1f}",
        )
    return table
