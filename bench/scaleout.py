"""``twin bench scaleout``: MQTT ingest with 1 and 2 processes, each subscribed to its own channels.

Real Mosquitto and influxd are started here. Per round and process count, ``twin ingest`` processes
(spawned, as a plant runs them) connect with the tag map's channels listed, so each subscribes to its
share's topics only (``connectors.mqtt.partitions``); a third configuration leaves them unlisted, so both
of 2 processes subscribe to the wildcard and skip the other's half, as before. The processes are then
stopped (SIGSTOP) while a backlog of ``--messages`` cycler messages is published, and the clock runs from
SIGCONT until the samples of every full batch are written to InfluxDB. Rounds alternate the
configurations so that all see the same machine state; medians are shown. A raw paho no-op subscriber
(one process, QoS 1) reads the same backlog in each round, for the ratio.

Accounted from the processes' own counters and from InfluxDB: samples written (summed over processes: a
sample processed twice shows as more than were published), stored (distinct points in InfluxDB: fewer is
a loss) and messages a process received for the other (0 when the broker splits the load).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bench.e2e import _run_ingest
from bench.ingest import CHANNELS, CpuMeter, Shape, _pid, _raw_mqtt
from bench.spawned import Spawned, wait_for
from connectors.tagmap import load as load_tag_map
from core.localservices import Influxd, Mosquitto, free_port, start_influxd, start_mosquitto
from core.metricstext import counter_totals
from core.settings import Settings

READY_S = 60.0
#: (processes, channels listed)
CONFIGURATIONS = ((1, True), (2, True), (2, False))
DRAIN_S = 300.0


def tag_map_toml(settings: Settings, channels: list[str]) -> str:
    """The built-in tag map's JSON cycler source as a plant's file says it, its channels listed if any."""
    lines = []
    for source in load_tag_map(None, settings).mqtt:
        if source.format != "json":
            continue
        units = ", ".join(f"{signal} = {json.dumps(unit)}" for signal, unit in source.units.items())
        lines += [
            "[[mqtt]]",
            f"topic = {json.dumps(source.topic)}",
            f"machine = {json.dumps(source.machine)}",
            'format = "json"',
            f"channel_level = {source.channel_level}",
            *([f"channels = {json.dumps(channels)}"] if channels else []),
            f"units = {{ {units} }}",
            f"ignore = {json.dumps(source.ignore)}",
            "",
        ]
    return "\n".join(lines)


@dataclass(frozen=True)
class Measurement:
    processes: int
    #: the channels are listed, so the broker sends each process its own only
    listed: bool
    samples_per_s: float
    published: int
    written: int
    stored: int
    other_partition: int
    #: samples each process wrote
    shares: list[int]
    #: CPU seconds of the ingest processes per sample, µs
    cpu_us: float


class Fleet(Spawned):
    """``processes`` ``twin ingest`` processes splitting one line's MQTT sources."""

    def __init__(self, base: Settings, workdir: Path, processes: int) -> None:
        settings: list[Settings] = []
        for partition in range(processes):
            ingest = base.ingest.model_copy(
                update={"partition": partition, "partitions": processes, "metrics_port": free_port()}
            )
            influx = base.influx.model_copy(update={"spool_dir": workdir / f"spool{partition}"})
            settings.append(base.model_copy(update={"ingest": ingest, "influx": influx}))
        super().__init__(_run_ingest, settings, lambda s: f"http://127.0.0.1:{s.ingest.metrics_port}/metrics")

    def totals(self) -> list[dict[str, float]]:
        return [counter_totals(self.metrics(s), "linetwin_ingest_") for s in self.settings]

    def written(self) -> float:
        """Samples written to InfluxDB by all the processes together."""
        return sum(t.get("written", 0) for t in self.totals())


def _base(mosquitto: Mosquitto, influxd: Influxd, workdir: Path, run: str, listed: bool) -> Settings:
    database = f"scale{run}"
    influxd.create_database(database)
    settings = Settings.model_validate(
        {
            # a site of its own: the sessions of earlier measurements must not queue this one's messages
            "site": f"scale{run}",
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "client_id_prefix": f"scale{run}"},
            "influx": {"url": influxd.url, "database": database},
            "ingest": {"opcua_enabled": False, "bus_enabled": False},
        }
    )
    tag_map = workdir / f"tagmap-{run}.toml"
    tag_map.write_text(tag_map_toml(settings, [f"ch{c + 1:02d}" for c in range(CHANNELS)] if listed else []))
    return settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"tag_map": tag_map})})


def measure(
    mosquitto: Mosquitto,
    influxd: Influxd,
    workdir: Path,
    processes: int,
    listed: bool,
    messages: int,
    shape: Shape,
) -> Measurement:
    run = f"{processes}p{free_port()}"
    base = _base(mosquitto, influxd, workdir, run, listed)
    fleet = Fleet(base, workdir / run, processes)
    fleet.start(READY_S, "ingest metrics")
    try:
        time.sleep(1.0)  # subscriptions follow the connection
        fleet.signal(signal.SIGSTOP)
        source = shape.source(mosquitto, run, root=base.namespace().step("cycler1"))
        for _ in range(messages // CHANNELS):
            source.publish_round()
        source.close()
        published = source.published
        cpu0 = fleet.cpu_seconds()
        start = time.perf_counter()
        fleet.signal(signal.SIGCONT)
        full_batches = published - processes * base.influx.batch_size
        wait_for(lambda: fleet.written() >= full_batches, DRAIN_S, "backlog")
        elapsed = time.perf_counter() - start
        cpu = fleet.cpu_seconds() - cpu0
        written_at_clock = fleet.written()
        wait_for(lambda: fleet.written() >= published, DRAIN_S, "last batches")
        time.sleep(1.0)  # anything written twice would show now
        totals = fleet.totals()
    finally:
        fleet.stop()
    series = influxd.query("SELECT count(value) FROM process", base.influx.database)
    stored = int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]
    influxd.drop_database(base.influx.database)
    return Measurement(
        processes,
        listed,
        written_at_clock / elapsed,
        published,
        int(sum(t.get("written", 0) for t in totals)),
        stored,
        int(sum(t.get("other_partition_messages", 0) for t in totals)),
        [int(t.get("written", 0)) for t in totals],
        cpu / written_at_clock * 1e6,
    )


def run(messages: int, per_message: int, rounds: int) -> tuple[list[Measurement], list[float]]:
    """Alternate 1 and 2 processes ``rounds`` times, each round with a raw client's rate beside them; 2
    processes both with their channels listed and, as every process read before, on the wildcard."""
    mosquitto, influxd = start_mosquitto(), start_influxd()
    workdir = Path(tempfile.mkdtemp(prefix="lt-scale-"))
    shape = Shape(per_message, 1)
    meter = CpuMeter({"mosquitto": _pid(mosquitto), "influxd": _pid(influxd)})
    found: list[Measurement] = []
    raw: list[float] = []
    try:
        for _ in range(rounds):
            raw.append(_raw_mqtt(mosquitto, messages, shape, meter)[0])
            for processes, listed in CONFIGURATIONS:
                found.append(measure(mosquitto, influxd, workdir, processes, listed, messages, shape))
    finally:
        mosquitto.cleanup()
        influxd.cleanup()
    return found, raw


def scaleout_command(
    messages: Annotated[int, typer.Option(min=CHANNELS, help="MQTT messages in each backlog")] = 24000,
    per_message: Annotated[int, typer.Option(min=1, help="JSON records (one sample each) a message")] = 20,
    rounds: Annotated[int, typer.Option(min=1, help="rounds of 1 and 2 processes; medians are shown")] = 3,
) -> None:
    """MQTT ingest throughput with 1 and 2 processes, each subscribed to its own channels only."""
    found, raw = run(messages, per_message, rounds)
    raw_rate = statistics.median(raw)
    table = Table(
        title=(
            f"twin bench scaleout ({os.cpu_count()} cores; {per_message} records a message, "
            f"{CHANNELS} channels)"
        ),
        caption=(
            "samples/s: until every full batch is written to InfluxDB, median of the rounds; ratio to raw: "
            f"to a raw paho no-op subscriber in one process ({raw_rate:,.0f} samples/s, median); "
            "written twice = written summed over processes - published; missed = published - stored"
        ),
    )
    columns = (
        "ingest processes",
        "samples/s",
        "ratio to 1 process",
        "ratio to raw client",
        "ingest CPU µs/sample",
        "written twice",
        "missed",
        "messages sent to the other process",
        "share written by each",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "ingest processes" else "right")
    one = statistics.median(m.samples_per_s for m in found if m.processes == 1)
    for processes, listed in CONFIGURATIONS:
        rows = [m for m in found if (m.processes, m.listed) == (processes, listed)]
        rate = statistics.median(m.samples_per_s for m in rows)
        table.add_row(
            f"{processes}, channels listed" if listed else f"{processes}, channel wildcard",
            f"{rate:,.0f}",
            f"{rate / one:.2f}",
            f"{rate / raw_rate:.2f}",
            f"{statistics.median(m.cpu_us for m in rows):.1f}",
            str(sum(max(m.written - m.published, 0) for m in rows)),
            str(sum(max(m.published - m.stored, 0) for m in rows)),
            str(sum(m.other_partition for m in rows)),
            " / ".join(f"{share / rows[0].published:.0%}" for share in rows[0].shares),
        )
    Console(width=160).print(table)
