"""The twin engine: plant bus in, live state, models and alerts out; no HTTP (the API wraps it).

Each line the worker owns (``twin.lines``) gets its own queue and task, fed in arrival order from one MQTT
subscription, so a line's samples reach exactly one analyser in order and its model and detector state stays
whole. Besides the stream the twin subscribes to each machine's retained state (``core.bus``): those last
values are held, not judged, so a setpoint that ingest read before this twin subscribed is known at once, in
the live state the API shows and in the models' ticks, whatever the start order. paho's network thread only
hands payloads to the asyncio loop; decoding, models, SQLite and InfluxDB writes all happen on the loop. Line
state (model snapshot + live values) is saved to the state file every few seconds and on stop, and restored on
start, so a restarted worker, or another worker taking the line over from the same state file, carries on
where the last one stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from core import bus, linedesc
from core.errors import RejectedInput
from core.influx.writer import InfluxWriter
from core.records import ModelOutput
from core.sample import Sample
from core.settings import Settings, TwinSettings
from twin.alarmrates import AlarmRates, rates
from twin.alerts import Alert, AlertState, AlertStore, Occurrence
from twin.catchup import Marks, backlog
from twin.influx import InfluxUnavailable, alert_point, last_values, model_point
from twin.live import Broadcaster, LiveState
from twin.ports import Analyser
from twin.store import StateStore

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 5.0
RATE_WINDOW_S = 24 * 3600.0  # the alarm-rate figures look back a day
STATE_EVENT_INTERVAL_S = 0.25


def spool_dir(settings: TwinSettings) -> Path:
    """The twin's InfluxDB spool, beside its state file (``var/twin.sqlite`` → ``var/twin.spool``)."""
    return settings.state_file.with_suffix(".spool")


def alert_document(alert: Alert, now_ns: int | None = None) -> dict[str, Any]:
    """The alert as one JSON-ready dict with its derived ISA-18.2 state (MQTT, SSE and the API)."""
    return asdict(alert) | {"state": alert.state(now_ns).value}


class EngineMetrics:
    """Prometheus metrics of one engine, in their own registry so several engines can share a process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.samples = Counter("twin_samples", "Samples processed", ["line"], registry=self.registry)
        self.rejected = Counter("twin_rejected", "Bus messages rejected", ["reason"], registry=self.registry)
        self.alerts = Counter(
            "twin_alerts_raised", "Alerts raised or re-raised", ["line"], registry=self.registry
        )
        self.batch_seconds = Histogram(
            "twin_batch_seconds", "Time to process one bus message", ["line"], registry=self.registry
        )
        self.queue_depth = Gauge("twin_queue_depth", "Bus messages waiting", ["line"], registry=self.registry)
        self.replayed = Counter(
            "twin_replayed_samples",
            "Samples replayed from InfluxDB after a restart (those the twin missed while down)",
            ["line"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "twin_duplicate_samples",
            "Bus samples already analysed (replayed or redelivered), dropped",
            ["line"],
            registry=self.registry,
        )
        self.bus_lag = Gauge(
            "twin_bus_lag_seconds",
            "Wall time from connector receive to twin processing",
            ["line"],
            registry=self.registry,
        )


class LineWorker:
    """One line's analyser, fed in order from its queue."""

    def __init__(self, engine: TwinEngine, line: str, analyser: Analyser) -> None:
        self.engine = engine
        self.line = line
        self.analyser = analyser
        #: (samples, held): held samples are last values from the retained state, known but not judged
        self.queue: asyncio.Queue[tuple[list[Sample], bool]] = asyncio.Queue()
        self.processed = 0
        self.last_sample_ns: int | None = None
        self.marks = Marks()
        #: a restored line replaying what it missed: ``/health`` says degraded meanwhile
        self.catching_up = len(self.marks) > 0

    async def run(self) -> None:
        try:
            if len(self.marks) and self.engine.writer is not None:
                await self.catch_up()
        finally:
            self.catching_up = False
        while True:
            samples, held = await self.queue.get()
            self.engine.metrics.queue_depth.labels(self.line).set(self.queue.qsize())
            started = time.perf_counter()
            try:
                self.take(samples, held)
            except Exception:
                log.exception("line worker failed on a batch", extra={"line": self.line})
            self.engine.metrics.batch_seconds.labels(self.line).observe(time.perf_counter() - started)
            await asyncio.sleep(0)  # a backlog must not starve the API: get() on a full queue never yields

    async def catch_up(self) -> None:
        """Replay from InfluxDB what arrived after the snapshot's marks, before the queued bus messages.

        Waits up to ``twin.catch_up_wait_s`` for InfluxDB; after that the line goes live and logs the gap.
        """
        settings = self.engine.settings
        machines = [step.id for step in self.engine.description.steps]
        newest = max(self.marks.since(m) or 0 for m in machines)
        oldest_ns = newest - int(settings.twin.catch_up_max_s * 1e9)
        started = time.monotonic()
        replayed = 0
        while True:
            try:
                async for batch in backlog(settings.influx, self.line, machines, self.marks, oldest_ns):
                    self.process(batch)
                    replayed += len(batch)
                    self.engine.metrics.replayed.labels(self.line).inc(len(batch))
                    await asyncio.sleep(0)
                break
            except InfluxUnavailable as exc:
                if time.monotonic() - started > settings.twin.catch_up_wait_s:
                    log.warning(
                        "not caught up: samples since the snapshot are not analysed (they are in InfluxDB)",
                        extra={"line": self.line, "error": str(exc)},
                    )
                    return
                await asyncio.sleep(1.0)
        log.info(
            "caught up from InfluxDB",
            extra={"line": self.line, "samples": replayed, "seconds": round(time.monotonic() - started, 2)},
        )

    def process(self, samples: list[Sample]) -> None:
        engine = self.engine
        fresh = self.marks.admit(samples)
        if len(fresh) < len(samples):
            engine.metrics.duplicates.labels(self.line).inc(len(samples) - len(fresh))
            if not fresh:
                return
            samples = fresh
        changed = engine.live.update(samples)
        engine.state.record_genealogy(samples)
        verdict = self.analyser.observe(samples)
        engine.write([model_point(self.line, output) for output in verdict.outputs])
        for occurrence in verdict.occurrences:
            engine.raise_alert(occurrence)
        for key in verdict.cleared:
            engine.clear_alert(key)
        self.processed += len(samples)
        newest = max(s.source_time_ns for s in samples)
        self.last_sample_ns = newest if self.last_sample_ns is None else max(self.last_sample_ns, newest)
        engine.metrics.samples.labels(self.line).inc(len(samples))
        engine.metrics.bus_lag.labels(self.line).set(
            max(0.0, (time.time_ns() - max(s.receive_time_ns for s in samples)) / 1e9)
        )
        engine.note_changes(self.line, changed)

    def take(self, samples: list[Sample], held: bool) -> None:
        """One queued bus message: stream samples are judged, retained last values only held."""
        if held:
            self.hold(samples)
        else:
            self.process(samples)

    def hold(self, samples: list[Sample]) -> None:
        """Last values (retained state, the database): into the live state and the models' held values."""
        changed = self.engine.live.update(samples)
        self.analyser.hold(samples)
        self.engine.note_changes(self.line, changed)

    def save(self) -> None:
        self.engine.state.save_snapshot(
            self.line,
            self.analyser.snapshot(),
            self.engine.live.dump_line(self.line),
            marks=self.marks.dump(),
        )

    def restore(self) -> bool:
        snapshot = self.engine.state.load_snapshot(self.line)
        if snapshot is None:
            return False
        self.analyser.restore(snapshot.model)
        self.engine.live.load_line(self.line, snapshot.live)
        self.marks = Marks.load(snapshot.marks)
        self.catching_up = len(self.marks) > 0 and self.engine.writer is not None
        return True


class TwinEngine:
    """Live state, models and alerts for the lines this worker owns."""

    def __init__(
        self,
        settings: Settings,
        analyser_factory: Callable[[str], Analyser],
        database: sqlite3.Connection,
        *,
        influx_enabled: bool = True,
    ) -> None:
        self.settings = settings
        #: the line's steps, signals, units and limits (``line_description``; default: the simulated line)
        self.description = linedesc.load(settings.line_description)
        self.lines = list(settings.twin.lines) or [settings.line]
        self.alerts = AlertStore(database)
        self.state = StateStore(database)
        self.live = LiveState()
        self.events = Broadcaster()
        self.metrics = EngineMetrics()
        #: None without InfluxDB (tests, the demo's fallback); else the one writer, spooled beside the state.
        self.writer = (
            InfluxWriter(settings.influx, spool_dir=spool_dir(settings.twin)) if influx_enabled else None
        )
        self.workers = {line: LineWorker(self, line, analyser_factory(line)) for line in self.lines}
        #: each served line's namespace -> the line; ``_routes`` caches topic -> (line, is the state)
        self._topics = {settings.namespace(line): line for line in self.lines}
        self._routes: dict[str, tuple[str, bool]] = {}
        self.connected = False
        self.started_ns = time.time_ns()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._mqtt: mqtt.Client | None = None
        self._pending_changes: dict[str, dict[str, dict[str, Any]]] = {}

    # lifecycle
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for worker in self.workers.values():
            if worker.restore():
                log.info("line state restored from snapshot", extra={"line": worker.line})
            elif self.writer is not None:
                await self._seed(worker)
        self._tasks = [asyncio.create_task(w.run(), name=f"line-{w.line}") for w in self.workers.values()]
        self._tasks += [
            asyncio.create_task(self._snapshots(), name="snapshots"),
            asyncio.create_task(self._state_events(), name="state-events"),
        ]
        if self.writer is not None:
            self._tasks.append(asyncio.create_task(self.writer.run(), name="influx-writer"))
        self._mqtt = self._connect()

    async def _seed(self, worker: LineWorker) -> None:
        """First start while the line already runs: take each machine signal's last value from InfluxDB.

        OPC UA reports by exception, so a setpoint that does not change is never sent again; without this
        a twin started after the connectors would not know it until someone changes it.
        """
        try:
            samples = await last_values(self.settings.influx, worker.line)
        except InfluxUnavailable as exc:
            log.warning("no last values from InfluxDB", extra={"line": worker.line, "error": str(exc)})
            return
        worker.hold(samples)
        log.info("line seeded from InfluxDB", extra={"line": worker.line, "signals": len(samples)})

    async def stop(self) -> None:
        if self._mqtt is not None:
            self._mqtt.disconnect()
            self._mqtt.loop_stop()
            self._mqtt = None
        deadline = time.monotonic() + self.settings.twin.stop_drain_s
        for worker in self.workers.values():
            while not worker.queue.empty() and time.monotonic() < deadline:
                worker.take(*worker.queue.get_nowait())
            if not worker.queue.empty():
                log.warning(
                    "stopped with bus messages not analysed (their samples are in InfluxDB)",
                    extra={"line": worker.line, "messages": worker.queue.qsize()},
                )
            worker.save()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.writer is not None:
            await self.writer.close()

    def write(self, lines: list[str]) -> None:
        """Queue model or alert points for InfluxDB (dropped when the twin runs without it)."""
        if self.writer is not None:
            self.writer.add(lines)

    # MQTT
    def _connect(self) -> mqtt.Client:
        cfg = self.settings.mqtt
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{cfg.client_id_prefix}-twin-{'+'.join(self.lines)}",
            clean_session=False,
        )
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        client.loop_start()
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connect refused", extra={"reason": str(reason)})
            return
        client.subscribe(
            [(ns.bus("+"), 1) for ns in self._topics] + [(ns.state("+"), 1) for ns in self._topics]
        )
        self.connected = True
        log.info("subscribed to the plant bus", extra={"lines": ",".join(self.lines)})

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        log.warning("MQTT disconnected", extra={"reason": str(reason)})

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.dispatch, message.topic, message.payload)

    def dispatch(self, topic: str, payload: bytes | bytearray) -> None:
        """Decode one bus message and queue it on its line's worker (runs on the loop)."""
        line, held = self._route(topic)
        worker = self.workers.get(line)
        if worker is None:
            self.metrics.rejected.labels("unknown_line").inc()
            return
        try:
            samples = bus.decode(bytes(payload))
        except RejectedInput as exc:
            self.metrics.rejected.labels(exc.reason).inc()
            log.warning("bus message rejected", extra={"topic": topic, "reason": exc.reason})
            return
        samples = [s for s in samples if s.line == worker.line]
        if samples:
            worker.queue.put_nowait((samples, held))
            self.metrics.queue_depth.labels(worker.line).set(worker.queue.qsize())

    def _route(self, topic: str) -> tuple[str, bool]:
        """The line of a bus or state topic ("" for none this twin serves), and whether it is the state."""
        route = self._routes.get(topic)
        if route is None:
            step = topic.rpartition("/")[2]
            route = next(
                (
                    (line, topic == ns.state(step))
                    for ns, line in self._topics.items()
                    if topic in (ns.bus(step), ns.state(step))
                ),
                ("", False),
            )
            if len(self._routes) < 10_000:
                self._routes[topic] = route
        return route

    # alerts
    def raise_alert(self, occurrence: Occurrence) -> None:
        """Raise (or keep up) an alert, naming the rolls the machine worked on since onset and the cells
        built from them."""
        since_onset = self.state.rolls_since(occurrence.line, occurrence.machine, occurrence.onset_ns)
        occurrence.rolls = sorted(set(occurrence.rolls) | set(since_onset))
        occurrence.cells = sorted(set(occurrence.cells) | set(self.state.cells_of_rolls(occurrence.rolls)))
        alert, changed = self.alerts.raise_condition(occurrence)
        if changed:
            self.metrics.alerts.labels(alert.line).inc()
            self.announce(alert)

    def clear_alert(self, key: str) -> None:
        alert = self.alerts.clear_condition(key)
        if alert is not None:
            self.announce(alert)

    def announce(self, alert: Alert) -> None:
        """Publish a changed alert: MQTT, the InfluxDB annotation, and the live stream."""
        now = time.time_ns()
        document = alert_document(alert, now)
        # A raise is charted where the drift began (plant time, the data's clock); later changes when made.
        raised = document["state"] == AlertState.ACTIVE_UNACKNOWLEDGED
        self.write([alert_point(alert, document["state"], alert.onset_ns if raised else now)])
        if self._mqtt is not None:
            self._mqtt.publish(self.settings.namespace(alert.line).alerts, json.dumps(document), qos=1)
        self.events.publish({"event": "alert", "data": document})
        log.info(
            "alert",
            extra={
                "id": alert.id,
                "line": alert.line,
                "machine": alert.machine,
                "signal": alert.signal,
                "cause": alert.cause,
                "state": document["state"],
            },
        )

    def acknowledge(self, alert_id: int, who: str, note: str = "") -> Alert:
        alert = self.alerts.acknowledge(alert_id, who, note)
        self.announce(alert)
        return alert

    def shelve(self, alert_id: int, who: str, duration_s: float, note: str = "") -> Alert:
        alert = self.alerts.shelve(alert_id, who, duration_s, note)
        self.announce(alert)
        return alert

    def unshelve(self, alert_id: int, who: str) -> Alert:
        alert = self.alerts.unshelve(alert_id, who)
        self.announce(alert)
        return alert

    # periodic jobs
    def note_changes(self, line: str, changed: dict[str, Any]) -> None:
        pending = self._pending_changes.setdefault(line, {})
        for machine, signals in changed.items():
            pending.setdefault(machine, {}).update({k: asdict(v) for k, v in signals.items()})

    async def _state_events(self) -> None:
        """Coalesce live changes into one ``state`` event per line every quarter second."""
        while True:
            await asyncio.sleep(STATE_EVENT_INTERVAL_S)
            pending, self._pending_changes = self._pending_changes, {}
            for line, machines in pending.items():
                self.events.publish({"event": "state", "data": {"line": line, "machines": machines}})

    def _open_alerts(self, line: str, time_ns: int) -> ModelOutput:
        """How many of the line's alerts need an operator (active or unacknowledged, not shelved)."""
        open_states = (
            AlertState.ACTIVE_UNACKNOWLEDGED,
            AlertState.ACKNOWLEDGED,
            AlertState.RETURNED_UNACKNOWLEDGED,
        )
        count = len(self.alerts.find(line=line, states=open_states, limit=10_000))
        return ModelOutput("line", "open_alerts", "count", float(count), time_ns)

    def rebaseline(self, line: str, step: str, who: str, note: str) -> int:
        """Recalibrate a step of ``line`` after maintenance, its open conditions cleared, recorded with
        who and when; returns when. ValueError for a line or step this twin does not serve."""
        worker = self.workers.get(line)
        if worker is None:
            raise ValueError(f"this twin does not serve line {line!r}; it serves {self.lines}")
        for key in worker.analyser.rebaseline(step):
            self.clear_alert(key)
        at = self.state.record_model_event(line, step, "rebaseline", who, note)
        worker.save()
        log.info("step re-baselined", extra={"line": line, "step": step, "by": who})
        return at

    def alarm_rates(
        self, line: str, window_s: float = RATE_WINDOW_S, now_ns: int | None = None
    ) -> AlarmRates:
        """The line's alarm-system figures over the last ``window_s`` (``twin.alarmrates``)."""
        now = time.time_ns() if now_ns is None else now_ns
        since = now - int(window_s * 1e9)
        return rates(self.alerts.raises(line, since, now), self.alerts.active_raised(line), since, now)

    def _rate_outputs(self, line: str, time_ns: int) -> list[ModelOutput]:
        """The alarm-system figures as model outputs, charted by the dashboards' alarm-rate panel."""
        figures = self.alarm_rates(line)
        return [
            ModelOutput("line", name, "alarm_rate", float(value), time_ns)
            for name, value in (
                ("alarms_per_10_min", figures.per_10_min),
                ("peak_alarms_per_10_min", figures.peak_per_10_min),
                ("alarm_floods", figures.floods),
                ("standing_alarms", figures.standing),
                ("chattering_alarms", len(figures.chattering)),
            )
        ]

    async def _snapshots(self) -> None:
        """Every few seconds: save each line's state and chart its status (parameters, specs, scrap risk)."""
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            for worker in self.workers.values():
                try:
                    worker.save()
                    if worker.last_sample_ns is not None:
                        status = worker.analyser.status(worker.last_sample_ns)
                        status.append(self._open_alerts(worker.line, worker.last_sample_ns))
                        status += self._rate_outputs(worker.line, worker.last_sample_ns)
                        self.write([model_point(worker.line, output) for output in status])
                except Exception:
                    log.exception("snapshot failed", extra={"line": worker.line})
