"""``twin bench twin-workers``: the twin's throughput with one worker for two lines, and one worker each.

Real Mosquitto and influxd are started here. Two lines of the pilot line's description carry the same
recorded simulator run (``plant.recording``, nominal, one message per machine and tick, as ingest
publishes the plant bus); the models calibrate on its first five minutes and judge the rest. Per round
and configuration, ``twin serve`` processes (spawned, real models) connect with persistent sessions;
they are then stopped (SIGSTOP) while both lines' backlog is published, and the clock runs from SIGCONT
until every sample is judged (``twin_samples_total``). Rounds alternate the configurations; medians are
shown.

Accounted from the workers' own counters: samples judged (summed over workers and lines: a sample judged
twice shows as more than were published, one missed as fewer) and duplicates dropped.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import paho.mqtt.client as mqtt
import typer
from rich.console import Console
from rich.table import Table

from bench.e2e import _run_twin
from bench.spawned import Spawned, wait_for
from core import bus
from core.localservices import (
    Influxd,
    Mosquitto,
    free_port,
    free_ports,
    start_influxd,
    start_mosquitto,
)
from core.metricstext import total
from core.sample import Sample
from core.settings import Settings
from plant.recording import Recording, record

READY_S = 90.0
DRAIN_S = 600.0
#: workers per configuration: one serving both lines, then one per line
CONFIGURATIONS = (1, 2)
#: the models calibrate on the first five plant minutes and judge the rest, as on a line in operation
CALIBRATION_S = 300.0


@dataclass(frozen=True)
class Measurement:
    workers: int
    samples_per_s: float
    published: int
    judged: int
    duplicates: int
    cpu_us_per_sample: float


def backlog(run: Recording, lines: list[str]) -> list[tuple[str, bytes]]:
    """(line, bus message) per machine and tick of a recorded run, for each of ``lines``."""
    numeric = run.process.select_dtypes("number")
    columns = [(c, *c.split(".", 1)) for c in numeric.columns]
    out: list[tuple[str, bytes]] = []
    for time_ns, row in zip(
        numeric.index.as_unit("ns").asi8.tolist(), numeric.itertuples(index=False), strict=True
    ):
        values = dict(zip(numeric.columns, row, strict=True))
        for line in lines:
            by_machine: dict[str, list[Sample]] = {}
            for column, machine, name in columns:
                value = float(values[column])
                if math.isfinite(value):
                    sample = Sample(line, machine, name, value, run.units.get(column, ""), time_ns, time_ns)
                    by_machine.setdefault(machine, []).append(sample)
            out += [(line, bus.encode(samples)) for samples in by_machine.values()]
    return out


class Workers(Spawned):
    """``count`` twin workers sharing ``lines`` between them, each with its own state file."""

    def __init__(self, base: Settings, workdir: Path, lines: list[str], count: int) -> None:
        share = [lines[i::count] for i in range(count)]
        settings = []
        for n, (port, owned) in enumerate(zip(free_ports(count), share, strict=True)):
            twin = base.twin.model_copy(
                update={"port": port, "lines": owned, "state_file": workdir / f"worker{n}.sqlite"}
            )
            settings.append(base.model_copy(update={"line": owned[0], "twin": twin}))
        super().__init__(_run_twin, settings, lambda s: f"http://127.0.0.1:{s.twin.port}/metrics")

    def judged(self) -> float:
        return sum(total(self.metrics(s), "twin_samples_total") for s in self.settings)

    def duplicates(self) -> float:
        return sum(total(self.metrics(s), "twin_duplicate_samples_total") for s in self.settings)


def measure(
    mosquitto: Mosquitto, influxd: Influxd, workdir: Path, count: int, recording: Recording
) -> Measurement:
    run = f"tw{count}w{free_port()}"
    lines = [f"{run}a", f"{run}b"]
    base = Settings.model_validate(
        {
            "site": run,  # its own topics: earlier sessions must not queue this round's messages
            "mqtt": {"host": mosquitto.host, "port": mosquitto.port, "client_id_prefix": run},
            "influx": {"url": influxd.url, "database": run},
            "twin": {"insecure": True, "membership_wait_s": 0.5},
            "models": {"calibration_s": CALIBRATION_S},
        }
    )
    influxd.create_database(run)
    messages = backlog(recording, lines)
    published = sum(len(bus.decode(payload)) for _, payload in messages)
    workers = Workers(base, workdir / run, lines, count)
    (workdir / run).mkdir(parents=True)
    workers.start(READY_S, "twin metrics")
    try:
        time.sleep(1.0)  # subscriptions follow the connection
        workers.signal(signal.SIGSTOP)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{run}-plant")
        client.connect(mosquitto.host, mosquitto.port)
        client.loop_start()
        for line, payload in messages:
            last = client.publish(base.namespace(line).bus("m"), payload, qos=1)
        last.wait_for_publish(120)
        client.loop_stop()
        client.disconnect()
        cpu0 = workers.cpu_seconds()
        start = time.perf_counter()
        workers.signal(signal.SIGCONT)
        wait_for(lambda: workers.judged() >= published, DRAIN_S, "judged backlog", poll_s=0.1)
        elapsed = time.perf_counter() - start
        cpu = workers.cpu_seconds() - cpu0
        time.sleep(1.0)  # anything judged twice would show now
        judged, duplicates = int(workers.judged()), int(workers.duplicates())
    finally:
        workers.stop()
        influxd.drop_database(run)
    return Measurement(count, published / elapsed, published, judged, duplicates, cpu / published * 1e6)


def run(minutes: float, rounds: int) -> list[Measurement]:
    recording = record("nominal", 1, minutes * 60)
    mosquitto, influxd = start_mosquitto(), start_influxd()
    workdir = Path(tempfile.mkdtemp(prefix="lt-twinw-"))
    found: list[Measurement] = []
    try:
        for _ in range(rounds):
            found += [measure(mosquitto, influxd, workdir, count, recording) for count in CONFIGURATIONS]
    finally:
        mosquitto.cleanup()
        influxd.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return found


def twin_workers_command(
    minutes: Annotated[float, typer.Option(min=6, help="plant minutes of backlog per line")] = 20.0,
    rounds: Annotated[int, typer.Option(min=1, help="rounds of 1 and 2 workers; medians are shown")] = 3,
) -> None:
    """Twin throughput on two lines: one worker for both, then one worker per line."""
    found = run(minutes, rounds)
    table = Table(
        title=f"twin bench twin-workers ({os.cpu_count()} cores; 2 lines, {minutes:g} plant min each)",
        caption=(
            "samples/s: from SIGCONT until every published sample is judged, median of the rounds; "
            "judged twice or missed: judged summed over workers - published"
        ),
    )
    columns = (
        "twin workers",
        "samples/s",
        "ratio to 1 worker",
        "CPU µs/sample",
        "judged - published",
        "duplicates",
    )
    for column in columns:
        table.add_column(column, justify="right")
    one = statistics.median(m.samples_per_s for m in found if m.workers == 1)
    for count in CONFIGURATIONS:
        mine = [m for m in found if m.workers == count]
        rate = statistics.median(m.samples_per_s for m in mine)
        table.add_row(
            f"{count} ({'both lines' if count == 1 else 'one line each'})",
            f"{rate:,.0f}",
            f"{rate / one:.2f}",
            f"{statistics.median(m.cpu_us_per_sample for m in mine):.1f}",
            ", ".join(str(m.judged - m.published) for m in mine),
            ", ".join(str(m.duplicates) for m in mine),
        )
    Console().print(table)
