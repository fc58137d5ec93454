"""``twin bench chaos``: the whole loop under a seeded schedule of kill -9s, counted by sequence numbers.

The simulated line runs at speed with ``twin ingest`` and the twin, its OPC UA server keeping history
(``plant.opcua_history_s``), and a second OPC UA server (the bench source, with history, standing in for
another vendor's machine) beside it. A schedule drawn from a seed
kills -9 and restarts Mosquitto, influxd, the OPC UA server, the ingest process and the twin, one or two
at once, each down for a few seconds. The simulator is the plant and keeps running.

At the end every stream is counted by its own sequence numbers (the OPC UA ScanCounter per machine, the
cyclers' ``seq`` per channel): stored, duplicated (one sequence number at two times) and lost (holes).
A hole on a server without history while ingest was down was never sent to anyone and is reported apart
from the goal (0 lost of what was produced while a connector was up). Alerts the twin published are
looked up in its API and in InfluxDB; after each twin restart its calibrated parameters must still be
there (no fresh calibration), and at the end its marks must have reached the newest stored sample of
every signal (no sample left unanalysed).
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Annotated, Any

import httpx
import paho.mqtt.client as mqtt
import typer
from rich.console import Console
from rich.table import Table

from bench.e2e import _SPAWN, _run_ingest, _run_twin, pipeline_settings, simulator
from core import linedesc
from core.localservices import (
    Influxd,
    LocalService,
    Mosquitto,
    free_ports,
    http_answers,
    port_open,
    start_influxd,
    start_mosquitto,
)
from core.metricstext import counter_totals, total
from core.sample import Sample
from core.settings import Settings
from plant.scenarios import Fault, Scenario
from twin.catchup import Marks

TARGETS = ("mosquitto", "influxd", "opcua", "ingest", "twin")
READY_S = 120.0  # a component not back within this is reported as not recovered
SPEED = 20.0
CALIBRATION_S = 300.0


@dataclass
class Kill:
    """One event of the schedule: ``targets`` killed -9 at ``at_s`` and restarted after ``down_s``."""

    at_s: float
    targets: tuple[str, ...]
    down_s: float


def schedule(
    seed: int, duration_s: float, gap_s: tuple[float, float], down_s: tuple[float, float]
) -> list[Kill]:
    """Kill events over ``duration_s`` (none in the first or last 10 %); a quarter of them hit two at once.
    The first five events take the components in a shuffled order, so a run of five or more hits each."""
    rng = random.Random(seed)
    first = rng.sample(TARGETS, len(TARGETS))
    events: list[Kill] = []
    t = duration_s * 0.1 + rng.uniform(*gap_s) / 2
    while t < duration_s * 0.9:
        targets = [first[len(events)]] if len(events) < len(first) else [rng.choice(TARGETS)]
        if rng.random() < 0.25:
            targets.append(rng.choice([name for name in TARGETS if name not in targets]))
        events.append(Kill(round(t, 1), tuple(targets), round(rng.uniform(*down_s), 1)))
        t += rng.uniform(*gap_s)
    return events


def step_faults(duration_s: float, speed: float) -> Scenario:
    """Pump-flow steps of -20 % for 10 plant minutes every 40 once calibrated: alerts for the count."""
    faults = []
    first = CALIBRATION_S + 600.0
    k = 0
    while first + k * 2400.0 < duration_s * speed:
        onset = first + k * 2400.0
        for name, change, at in (("down", -0.2, onset), ("up", 0.2, onset + 600.0)):
            faults.append(
                Fault(
                    f"chaos-step{k}-{name}",
                    "coater1",
                    "pump_efficiency",
                    change,
                    "fraction",
                    at,
                    0.0,
                    ("coater1.pump_flow",),
                    "pump flow steps by 20 %",
                )
            )
        k += 1
    return Scenario("bench-chaos-steps", "pump flow steps for the chaos run", tuple(faults))


class Component:
    """Something the schedule kills -9 and restarts; ``ready`` says it serves again."""

    name: str

    def start(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError


class Service(Component):
    """Mosquitto or influxd: the same port and data directory after the restart."""

    def __init__(self, name: str, service: LocalService) -> None:
        self.name, self.service = name, service

    def start(self) -> None:
        self.service.start(timeout=READY_S)

    def kill(self) -> None:
        self.service.kill()

    def ready(self) -> bool:
        return self.service.process is not None and self.service.ready()


class OpcUaServer(Component):
    """The bench OPC UA source with history, its counters and clock kept across kills."""

    def __init__(self, port: int, state: Path, log: Path) -> None:
        self.name, self.port, self.state, self.log = "opcua", port, state, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "bench.ingest_sources", "opcua", "--port", str(self.port)]
        command += ["--history", "--state", str(self.state), "--interval", "0.05"]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def ready(self) -> bool:
        return port_open("127.0.0.1", self.port)

    def produced(self) -> dict[str, int]:
        """Ticks served per machine, from the counters the source wrote after each one."""
        return {name: int(n) for name, n in json.loads(self.state.read_text())["ticks"].items()}


class Child(Component):
    """``twin ingest`` or the twin in a spawned process; ready when its ``/health`` says ok."""

    def __init__(
        self, name: str, target: Callable[[Settings], None], settings: Settings, health: str
    ) -> None:
        self.name, self.target, self.settings, self.health = name, target, settings, health
        self.process: BaseProcess | None = None

    def start(self) -> None:
        self.process = _SPAWN.Process(target=self.target, args=(self.settings,), daemon=True)
        self.process.start()

    def kill(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
            self.process.join(10)

    def ready(self) -> bool:
        return http_answers(self.health, timeout=2.0)

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(20)
            self.kill()


@dataclass
class Recovery:
    name: str
    down_s: float
    recovered_s: float | None  # restart -> ready (None: not within READY_S)


@dataclass
class Stream:
    """One sequence-numbered stream: an OPC UA machine or a cycler channel."""

    name: str
    produced: int
    stored: int
    duplicated: int
    lost_while_up: int
    lost_while_down: int = 0  # no history, ingest down: never sent to anyone
    #: the sequence numbers lost while a connector was up, as (first, last) ranges
    holes: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class ChaosResult:
    events: list[Kill]
    recoveries: list[Recovery]
    streams: list[Stream]
    alerts_published: int
    alerts_lost_api: int
    alerts_lost_influx: int
    twin_restarts: int
    model_state_lost: int
    signals_behind: list[str]
    replayed: float
    duration_s: float
    #: the last ingest process's counters (since its last restart): seq gaps, redeliveries, rejects
    ingest_counters: dict[str, float] = field(default_factory=dict)


class AlertListener:
    """Every alert document the twin publishes (QoS 1, a persistent session of its own)."""

    def __init__(self, settings: Settings) -> None:
        self.ids: set[int] = set()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"chaos-{uuid.uuid4().hex[:6]}", clean_session=False
        )
        topic = settings.namespace().alerts
        self.client.on_connect = lambda client, *_: client.subscribe(topic, 1)
        self.client.on_message = lambda _c, _u, message: self.ids.add(int(json.loads(message.payload)["id"]))
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async("127.0.0.1", settings.mqtt.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _influx(settings: Settings, influxql: str) -> list[dict[str, Any]]:
    params = {"db": settings.influx.database, "q": influxql, "epoch": "ns"}
    response = httpx.get(f"{settings.influx.url}/query", params=params, timeout=120)
    response.raise_for_status()
    return list(response.json()["results"][0].get("series", []))


def _parameters(settings: Settings) -> set[str]:
    url = f"http://127.0.0.1:{settings.twin.port}/models/parameters"
    try:
        body = httpx.get(url, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return set()
    return {f"{p['machine']}.{p['name']}" for p in body if p.get("origin") == "data"}


def _seq_streams(settings: Settings) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """Per stream (machine, or machine/channel), per signal: its (seq, time) pairs."""
    streams: dict[str, dict[str, list[tuple[int, int]]]] = {}
    machines = _influx(
        settings, f"SHOW TAG VALUES FROM process WITH KEY = machine WHERE line = '{settings.line}'"
    )
    for machine in [row[1] for serie in machines for row in serie.get("values", [])]:
        series = _influx(
            settings,
            f"SELECT \"seq\" FROM process WHERE line = '{settings.line}' AND machine = '{machine}' "
            "AND seq >= 0 GROUP BY channel, signal",
        )
        for serie in series:
            channel = serie.get("tags", {}).get("channel") or ""
            name = f"{machine}/{channel}" if channel else machine
            pairs = [(int(seq), int(t)) for t, seq in serie["values"] if seq is not None]
            streams.setdefault(name, {})[serie["tags"]["signal"]] = pairs
    return streams


def _count(
    name: str,
    signals: dict[str, list[tuple[int, int]]],
    produced: int | None,
    unsent: Callable[[int, int], bool] | None = None,
) -> Stream:
    """Stored, duplicated and lost of one stream. ``produced``: the source's own count, else the last
    stored. ``unsent(t0, t1)``: no connector could have received what the source made between these two
    times (ingest was down, and the server keeps no history or lost it in a kill before ingest was back);
    such a hole is reported apart from the goal."""
    seen: dict[int, int] = {}
    duplicated = 0
    for pairs in signals.values():
        times: dict[int, set[int]] = {}
        for seq, t in pairs:
            if produced is not None and not 1 <= seq <= produced:
                continue  # the nodes' initial values (no tick), or made after the count was taken
            times.setdefault(seq, set()).add(t)
            seen.setdefault(seq, t)
        duplicated += sum(len(ts) - 1 for ts in times.values())
    seqs = sorted(seen)
    first = seqs[0]
    last = produced if produced is not None else seqs[-1]
    while_down = 0
    holes = []
    for before, after in zip(seqs, [*seqs[1:], last + 1], strict=True):
        missing = after - before - 1
        if missing > 0:
            if unsent is not None and unsent(seen[before], seen.get(after, seen[before])):
                while_down += missing
            else:
                holes.append((before + 1, after - 1))
    while_up = sum(b - a + 1 for a, b in holes)
    return Stream(name, last - first + 1, len(seqs), duplicated, while_up, while_down, holes)


@contextlib.contextmanager
def _services() -> Iterator[tuple[Mosquitto, Influxd]]:
    mosquitto, influxd = start_mosquitto(), start_influxd()
    try:
        yield mosquitto, influxd
    finally:
        mosquitto.cleanup()
        influxd.cleanup()


def run_chaos(
    duration_s: float,
    seed: int,
    gap_s: tuple[float, float],
    down_s: tuple[float, float],
    log: Callable[[str], None],
) -> ChaosResult:
    events = schedule(seed, duration_s, gap_s, down_s)
    with (
        tempfile.TemporaryDirectory(prefix="lt-chaos-", ignore_cleanup_errors=True) as scratch,
        _services() as (mosquitto, influxd),
    ):
        work = Path(scratch)
        influx_url = f"http://127.0.0.1:{influxd.port}"
        settings = pipeline_settings(
            mosquitto.port, influx_url, work, scenario="bench-chaos-steps", speed=SPEED
        )
        opcua_port, ingest_port = free_ports(2)
        bench_endpoint = f"opc.tcp://127.0.0.1:{opcua_port}/bench"
        settings = settings.model_copy(
            update={
                "opcua": settings.opcua.model_copy(
                    update={
                        "endpoints": [*settings.opcua.endpoints, bench_endpoint],
                        "security_policy": "None",  # the bench source serves none; security has its tests
                        "security_mode": "None",
                        "reconnect_min_s": 0.2,
                        "reconnect_max_s": 2.0,
                    }
                ),
                "plant": settings.plant.model_copy(
                    update={"opcua_security_modes": ["None"], "opcua_history_s": 2 * duration_s}
                ),
                "ingest": settings.ingest.model_copy(update={"metrics_port": ingest_port}),
                "influx": settings.influx.model_copy(update={"retry_max_s": 2.0, "timeout_s": 5.0}),
                "models": settings.models.model_copy(update={"calibration_s": CALIBRATION_S}),
                "twin": settings.twin.model_copy(update={"insecure": True}),
            }
        )
        influxd.create_database(settings.influx.database)
        twin_health = f"http://127.0.0.1:{settings.twin.port}/health"
        components: dict[str, Component] = {
            "mosquitto": Service("mosquitto", mosquitto),
            "influxd": Service("influxd", influxd),
            "opcua": OpcUaServer(opcua_port, work / "opcua-ticks.json", work / "opcua.log"),
            "ingest": Child("ingest", _run_ingest, settings, f"http://127.0.0.1:{ingest_port}/health"),
            "twin": Child("twin", _run_twin, settings, twin_health),
        }
        opcua = components["opcua"]
        assert isinstance(opcua, OpcUaServer)
        ingest, twin = components["ingest"], components["twin"]
        assert isinstance(ingest, Child) and isinstance(twin, Child)
        opcua.start()
        ingest.start()
        twin.start()
        listener = AlertListener(settings)
        ingest_down: list[tuple[float, float]] = []  # wall times: killed, healthy again
        opcua_kills: list[float] = []
        recoveries: list[Recovery] = []
        restarts = model_lost = 0
        try:
            with simulator(settings, step_faults(duration_s, SPEED)) as (_plant, _start):
                _wait(lambda: ingest.ready() and twin.ready(), READY_S, "ingest and the twin")
                started = time.monotonic()
                for event in events:
                    time.sleep(max(0.0, started + event.at_s - time.monotonic()))
                    before = _parameters(settings) if "twin" in event.targets else set()
                    log(f"{time.monotonic() - started:6.1f} s  kill -9 {' + '.join(event.targets)}")
                    killed = time.time()
                    for name in event.targets:
                        components[name].kill()
                    time.sleep(event.down_s)
                    back = time.monotonic()
                    for name in event.targets:
                        components[name].start()
                    for name in event.targets:
                        ok = _until(components[name].ready, READY_S)
                        recoveries.append(
                            Recovery(name, event.down_s, time.monotonic() - back if ok else None)
                        )
                    if "ingest" in event.targets:
                        ingest_down.append((killed, time.time()))
                    if "opcua" in event.targets:
                        opcua_kills.append(killed)
                    if "twin" in event.targets:
                        restarts += 1
                        after = _parameters(settings)
                        model_lost += int(bool(before) and not before <= after)
                time.sleep(max(0.0, started + duration_s - time.monotonic()))
                produced = opcua.produced()  # what a connected client has had a second to receive
                time.sleep(1.0)
            opcua.kill()
            elapsed = time.monotonic() - started
            _wait(lambda: _drained(ingest.health) and twin.ready(), READY_S, "ingest and the twin to drain")
            _settle(settings)
            streams = _seq_streams(settings)

            def ingest_was_down(wall0: float, wall1: float, history_lost: bool) -> bool:
                return any(
                    a - 2.0 < wall1
                    and wall0 < b + 2.0
                    and (not history_lost or any(a <= k <= b for k in opcua_kills))
                    for a, b in ingest_down
                )

            def unsent_bench(t0: int, t1: int) -> bool:  # wall time, history until a kill
                return ingest_was_down(t0 / 1e9, t1 / 1e9, history_lost=True)

            counted = []
            for name, signals in sorted(streams.items()):
                own = produced.get(name.lower())
                if own is not None:
                    counted.append(_count(name, signals, own, unsent_bench))
                else:  # a cycler channel (MQTT: the broker keeps the session) or a simulated machine
                    counted.append(_count(name, signals, None))  # (its server keeps history, never killed)
            api = httpx.get(
                f"http://127.0.0.1:{settings.twin.port}/alerts", params={"limit": 1000}, timeout=10
            )
            in_api = {int(a["id"]) for a in api.json()}
            stored = _influx(settings, f"SELECT \"id\" FROM alert WHERE line = '{settings.line}'")
            in_influx = {int(row[1]) for serie in stored for row in serie.get("values", [])}
            replayed = total(f"http://127.0.0.1:{settings.twin.port}/metrics", "twin_replayed_samples_total")
            counters = counter_totals(f"http://127.0.0.1:{ingest_port}/metrics", "linetwin_ingest_")
            twin.stop()  # a clean stop saves the marks the last check reads
            behind = _behind(settings)
        finally:
            listener.close()
            for child in (twin, ingest):
                child.stop()
            opcua.kill()
    published = listener.ids | in_api
    return ChaosResult(
        events,
        recoveries,
        counted,
        len(published),
        len(published - in_api),
        len(published - in_influx),
        restarts,
        model_lost,
        behind,
        replayed,
        elapsed,
        counters,
    )


def _until(condition: Callable[[], bool], within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _wait(condition: Callable[[], bool], within_s: float, what: str) -> None:
    if not _until(condition, within_s):
        raise RuntimeError(f"{what}: not ready within {within_s:.0f} s")


def _drained(health: str) -> bool:
    """Ingest's spool is empty and the broker connected (its OPC UA sources may be gone by now)."""
    try:
        body = httpx.get(health, timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return False
    reasons = body.get("reasons", [])
    return body.get("influx_spooled_batches", 1) == 0 and not any("MQTT" in r for r in reasons)


def _settle(settings: Settings, quiet_s: float = 5.0, within_s: float = 180.0) -> None:
    """Until the stored point count stops moving (spools replayed, backfills done)."""
    deadline = time.monotonic() + within_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        series = _influx(settings, f"SELECT count(\"value\") FROM process WHERE line = '{settings.line}'")
        count = int(series[0]["values"][0][1]) if series else 0
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(1.0)


def _behind(settings: Settings) -> list[str]:
    """Signals of the line's steps whose newest stored sample the stopped twin had not analysed."""
    steps = {step.id for step in linedesc.load(settings.line_description).steps}
    with contextlib.closing(sqlite3.connect(settings.twin.state_file)) as db:
        row = db.execute("SELECT marks FROM line_snapshot WHERE line = ?", (settings.line,)).fetchone()
    marks = Marks.load(row[0] if row else None)
    series = _influx(
        settings,
        f"SELECT last(\"value\") FROM process WHERE line = '{settings.line}' "
        "GROUP BY machine, channel, signal",
    )
    behind = []
    for serie in series:
        tags = serie["tags"]
        if tags["machine"] in steps:
            newest = int(serie["values"][0][0])
            channel = tags.get("channel") or None
            probe = Sample(
                settings.line, tags["machine"], tags["signal"], 0.0, "", newest, newest, channel=channel
            )
            if marks.fresh([probe]):
                behind.append("/".join(filter(None, (tags["machine"], tags.get("channel"), tags["signal"]))))
    return behind


def goals_met(result: ChaosResult) -> list[str]:
    """The goals a run missed (empty: all met)."""
    missed = []
    if lost := sum(s.lost_while_up for s in result.streams):
        missed.append(f"{lost} samples lost while a connector was up")
    if duplicated := sum(s.duplicated for s in result.streams):
        missed.append(f"{duplicated} duplicate points")
    if result.alerts_lost_api or result.alerts_lost_influx:
        missed.append(f"alerts lost: {result.alerts_lost_api} (API), {result.alerts_lost_influx} (InfluxDB)")
    if result.model_state_lost:
        missed.append(f"{result.model_state_lost} twin restarts calibrated afresh")
    if result.signals_behind:
        names = ", ".join(result.signals_behind[:5])
        missed.append(f"{len(result.signals_behind)} signals not analysed up to their newest sample: {names}")
    if not_back := [r.name for r in result.recoveries if r.recovered_s is None]:
        missed.append(f"not recovered within {READY_S:.0f} s: {', '.join(not_back)}")
    return missed


def _tables(result: ChaosResult) -> list[Table]:
    samples = Table(
        title=f"samples by sequence number ({result.duration_s:.0f} s, {len(result.events)} kill events)"
    )
    for column in (
        "stream",
        "produced",
        "stored",
        "duplicated",
        "lost (connector up)",
        "unsent (connector down)",
    ):
        samples.add_column(column, justify="left" if column == "stream" else "right")
    for stream in result.streams:
        samples.add_row(
            stream.name,
            str(stream.produced),
            str(stream.stored),
            str(stream.duplicated),
            str(stream.lost_while_up),
            str(stream.lost_while_down),
        )
    recovery = Table(title="recovery: restart -> healthy, serving again (s)")
    for column in ("component", "kills", "down s (mean)", "recovered p50", "max"):
        recovery.add_column(column, justify="left" if column == "component" else "right")
    for name in TARGETS:
        mine = [r for r in result.recoveries if r.name == name]
        if not mine:
            continue
        times = sorted(r.recovered_s for r in mine if r.recovered_s is not None)
        recovery.add_row(
            name,
            str(len(mine)),
            f"{sum(r.down_s for r in mine) / len(mine):.1f}",
            f"{times[len(times) // 2]:.1f}" if times else "-",
            f"{times[-1]:.1f}" if len(times) == len(mine) else "not recovered",
        )
    twin = Table(title="twin")
    for column in (
        "alerts published",
        "lost (API)",
        "lost (InfluxDB)",
        "restarts",
        "model state lost",
        "replayed samples",
        "signals behind",
    ):
        twin.add_column(column, justify="right")
    twin.add_row(
        str(result.alerts_published),
        str(result.alerts_lost_api),
        str(result.alerts_lost_influx),
        str(result.twin_restarts),
        str(result.model_state_lost),
        f"{result.replayed:.0f}",
        str(len(result.signals_behind)),
    )
    return [samples, recovery, twin]


def chaos_command(
    minutes: Annotated[float, typer.Option(min=1, help="how long the plant runs under the schedule")] = 10.0,
    seed: Annotated[int, typer.Option(help="draws the kill schedule")] = 1,
) -> None:
    """kill -9 Mosquitto, influxd, the OPC UA server, ingest and the twin on a seeded schedule; count
    samples, duplicates, losses, alerts and recovery times."""
    console = Console(width=120)
    result = run_chaos(minutes * 60.0, seed, (20.0, 50.0), (2.0, 20.0), console.print)
    for table in _tables(result):
        console.print(table)
    console.print(
        "ingest counters since its last restart: "
        + ", ".join(f"{k} {v:.0f}" for k, v in result.ingest_counters.items())
    )
    for stream in result.streams:
        if stream.holes:
            console.print(f"{stream.name}: lost seq {', '.join(f'{a}-{b}' for a, b in stream.holes[:10])}")
    missed = goals_met(result)
    for goal in missed:
        console.print(f"[bold red]goal missed:[/] {goal}")
    if missed:
        raise typer.Exit(1)
    console.print(
        "[bold green]all goals met[/]: 0 lost while a connector was up, 0 duplicates, 0 alerts lost"
    )
