"""The twin engine: plant bus in, live state, models and alerts out; no HTTP (the API wraps it).

Each line the worker owns (``twin.lines``) gets its own queue and task, fed in arrival order from one MQTT
subscription, so a line's samples reach exactly one analyser in order and its model and detector state stays
whole. Besides the stream the twin subscribes to each machine's retained state (``core.bus``): those last
values are held, not judged, so a setpoint that ingest read before this twin subscribed is known at once, in
the live state the API shows and in the models' ticks, whatever the start order. paho's network thread only
hands payloads to the asyncio loop; decoding, models, SQLite and InfluxDB writes all happen on the loop. Line
state (model snapshot + live values) is saved to the state file every few seconds and on stop, and restored on
start, so a restarted worker, or another worker taking the line over from the same state file, carries on
where the last one stopped. Which worker serves a line is agreed on the broker (``twin.membership``): a
standby worker takes a dead worker's lines over and hands them back when their owner returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
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
from core.uns import Namespace
from twin.alarmrates import AlarmRates, rates
from twin.alerts import Alert, AlertState, AlertStore, Occurrence
from twin.catchup import Marks, backlog
from twin.influx import InfluxUnavailable, alert_point, last_values, model_point
from twin.live import Broadcaster, LiveState
from twin.membership import Membership, WorkerStatus, status_filter, status_topic
from twin.ports import Analyser
from twin.store import StateStore

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 5.0
RATE_WINDOW_S = 24 * 3600.0  # the alarm-rate figures look back a day
STATE_EVENT_INTERVAL_S = 0.25
MEMBERSHIP_SETTLE_S = 0.3  # retained statuses follow the SUBACK within milliseconds


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
        self.handovers = Counter(
            "twin_line_handovers",
            "Lines taken over from a dead worker (taken) or handed back to their owner (released)",
            ["line", "direction"],
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
        #: the lines this worker owns (``twin.lines``), and those it serves or holds for now: its own, and
        #: any it took over (``twin.standby_lines``)
        self.owned = list(settings.twin.lines) or [settings.line]
        self.lines = list(self.owned)
        self._analyser_factory = analyser_factory
        self.worker_id = f"{settings.mqtt.client_id_prefix}-twin-{','.join(self.owned)}"  # a topic level too
        standby = frozenset(settings.twin.standby_lines) - frozenset(self.owned)
        self.membership = Membership(self.worker_id, frozenset(self.owned), standby)
        #: lines whose analysers run here now; an owned line another worker still serves waits (deferred)
        self.running: set[str] = set()
        self._deferred_since: dict[str, float] = {}
        self._line_tasks: dict[str, asyncio.Task[None]] = {}
        self._membership_changed = asyncio.Event()
        self._heard = asyncio.Event()  # the broker acknowledged the subscriptions (statuses follow)
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
        self._status_prefix = status_filter(settings.mqtt.topic_root).rstrip("+")
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
        self._mqtt = self._connect()
        await self._hear_members()
        for worker in list(self.workers.values()):
            if self.membership.served_elsewhere(worker.line):
                self._deferred_since[worker.line] = time.monotonic()
                log.info("waiting for the line's current worker to hand it back", extra={"line": worker.line})
            else:
                await self._begin(worker)
        self._tasks += [
            asyncio.create_task(self._snapshots(), name="snapshots"),
            asyncio.create_task(self._state_events(), name="state-events"),
            asyncio.create_task(self._follow_members(), name="membership"),
        ]
        if self.writer is not None:
            self._tasks.append(asyncio.create_task(self.writer.run(), name="influx-writer"))
        self._publish_status()

    async def _begin(self, worker: LineWorker) -> None:
        """Resume a line from its snapshot (or seed it from InfluxDB) and start its task."""
        if worker.restore():
            log.info("line state restored from snapshot", extra={"line": worker.line})
        elif self.writer is not None:
            await self._seed(worker)
        self.running.add(worker.line)
        self._line_tasks[worker.line] = asyncio.create_task(worker.run(), name=f"line-{worker.line}")

    async def _hear_members(self) -> None:
        """Wait (``twin.membership_wait_s`` at most) for the broker's retained worker statuses."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard.wait(), timeout=self.settings.twin.membership_wait_s)
        if self._heard.is_set():
            await asyncio.sleep(MEMBERSHIP_SETTLE_S)

    async def _follow_members(self) -> None:
        """Take over, hand back and resume lines as the workers' statuses change (``twin.membership``)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._membership_changed.wait(), timeout=1.0)
            self._membership_changed.clear()
            try:
                await self._rebalance()
            except Exception:
                log.exception("membership change failed")

    async def _rebalance(self) -> None:
        membership, changed = self.membership, False
        for line in sorted(membership.to_release(self.running)):
            await self._release(line)
            changed = True
        for line in sorted(self.running & set(self.owned)):
            if membership.served_elsewhere(line):  # taken over while this worker was cut off: its state wins
                await self._stop_line(line, save=False)
                self.workers[line] = LineWorker(self, line, self._analyser_factory(line))
                self._deferred_since[line] = time.monotonic()
                log.warning("line served by another worker: resuming from its snapshot", extra={"line": line})
                changed = True
        for line, since in sorted(self._deferred_since.items()):
            waited = time.monotonic() - since
            if not membership.served_elsewhere(line) or waited > self.settings.twin.handover_wait_s:
                if waited > self.settings.twin.handover_wait_s:
                    log.warning("line not handed back in time: resuming anyway", extra={"line": line})
                del self._deferred_since[line]
                await self._begin(self.workers[line])
                changed = True
        for line in sorted(membership.to_adopt(self.running)):
            await self._adopt(line)
            changed = True
        if changed:
            self._publish_status()

    async def _adopt(self, line: str) -> None:
        """Take over a standby line whose workers are gone: their snapshot, then InfluxDB, then the bus."""
        worker = LineWorker(self, line, self._analyser_factory(line))
        self.workers[line] = worker
        self.lines.append(line)
        self._topics[self.settings.namespace(line)] = line
        self._routes.clear()
        await self._begin(worker)
        self._subscribe_lines([line])
        self.metrics.handovers.labels(line, "taken").inc()
        log.warning("took over a line whose worker is gone", extra={"line": line})

    async def _release(self, line: str) -> None:
        """Hand a line taken over back to its owner: stop it, save its snapshot, stop listening."""
        namespace = self.settings.namespace(line)
        if self._mqtt is not None:
            self._mqtt.unsubscribe(_line_topics([namespace]))
        self._topics.pop(namespace, None)
        self._routes.clear()
        await self._stop_line(line, save=True)
        del self.workers[line]
        self.lines.remove(line)
        self.metrics.handovers.labels(line, "released").inc()
        log.info("handed a line back to its owner", extra={"line": line})

    async def _stop_line(self, line: str, *, save: bool) -> None:
        task = self._line_tasks.pop(line, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.running.discard(line)
        if save:
            self._drain(self.workers[line])
            self.workers[line].save()

    def _drain(self, worker: LineWorker) -> None:
        """Analyse the bus messages queued now (not later arrivals) within ``twin.stop_drain_s``."""
        deadline = time.monotonic() + self.settings.twin.stop_drain_s
        messages = worker.queue.qsize()
        while messages > 0 and not worker.queue.empty() and time.monotonic() < deadline:
            worker.take(*worker.queue.get_nowait())
            messages -= 1
        if not worker.queue.empty():
            log.warning(
                "stopped with bus messages not analysed (their samples are in InfluxDB)",
                extra={"line": worker.line, "messages": worker.queue.qsize()},
            )

    def _status(self, online: bool) -> WorkerStatus:
        return WorkerStatus(
            self.worker_id,
            online,
            frozenset(self.owned),
            frozenset(self.running) if online else frozenset(),
            self.membership.standby,
        )

    def _publish_status(self) -> None:
        if self._mqtt is not None:
            topic = status_topic(self.settings.mqtt.topic_root, self.worker_id)
            self._mqtt.publish(topic, self._status(True).encode(), qos=1, retain=True)

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
        """Analyse what is queued, save every running line, then say so on the broker (a standby takes
        over from these snapshots) and disconnect; a deferred line is another worker's to save."""
        announce = self._mqtt is not None
        if self._mqtt is not None:
            self._mqtt.disconnect()
            self._mqtt.loop_stop()
            self._mqtt = None
        for line in sorted(set(self.workers) - set(self._deferred_since)):
            await self._stop_line(line, save=True)
        if announce:
            await asyncio.to_thread(self._announce_offline)
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
    def _client(self, client_id: str, clean_session: bool) -> mqtt.Client:
        cfg = self.settings.mqtt
        version = mqtt.CallbackAPIVersion.VERSION2
        client = mqtt.Client(version, client_id=client_id, clean_session=clean_session)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password.get_secret_value() if cfg.password else None)
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        return client

    def _connect(self) -> mqtt.Client:
        cfg = self.settings.mqtt
        client = self._client(self.worker_id, clean_session=False)
        topic = status_topic(cfg.topic_root, self.worker_id)
        client.will_set(topic, self._status(False).encode(), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.connect_async(cfg.host, cfg.port, cfg.keepalive_s)
        client.loop_start()
        return client

    def _announce_offline(self) -> None:
        """After the last snapshots, tell the other workers (a clean disconnect sends no last will)."""
        cfg = self.settings.mqtt
        client = self._client(f"{self.worker_id}-bye", clean_session=True)
        try:
            client.connect(cfg.host, cfg.port, cfg.keepalive_s)
            client.loop_start()
            info = client.publish(
                status_topic(cfg.topic_root, self.worker_id), self._status(False).encode(), qos=1, retain=True
            )
            info.wait_for_publish(timeout=2.0)
            client.disconnect()
            client.loop_stop()
        except (OSError, RuntimeError, ValueError) as exc:
            log.warning("could not say this worker stopped; standbys wait", extra={"error": str(exc)})

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT connect refused", extra={"reason": str(reason)})
            return
        topics = [*_line_topics(self._topics), status_filter(self.settings.mqtt.topic_root)]
        client.subscribe([(topic, 1) for topic in topics])
        self.connected = True
        log.info("subscribed to the plant bus", extra={"lines": ",".join(self.lines)})
        if self._loop is not None and self._heard.is_set():  # a reconnect: the last will may have gone out
            self._loop.call_soon_threadsafe(self._publish_status)

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, _codes: Any, _p: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._heard.set)

    def _subscribe_lines(self, lines: list[str]) -> None:
        if self._mqtt is not None:
            topics = _line_topics([self.settings.namespace(line) for line in lines])
            self._mqtt.subscribe([(topic, 1) for topic in topics])

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected = False
        log.warning("MQTT disconnected", extra={"reason": str(reason)})

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.dispatch, message.topic, message.payload)

    def dispatch(self, topic: str, payload: bytes | bytearray) -> None:
        """Decode one bus message and queue it on its line's worker (runs on the loop)."""
        if topic.startswith(self._status_prefix):
            self._on_status(bytes(payload))
            return
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

    def _on_status(self, payload: bytes) -> None:
        try:
            status = WorkerStatus.decode(payload)
        except ValueError as exc:
            self.metrics.rejected.labels("bad_worker_status").inc()
            log.warning("worker status rejected", extra={"reason": str(exc)})
            return
        self.membership.seen(status)
        self._membership_changed.set()

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
            for worker in [w for w in self.workers.values() if w.line in self.running]:
                try:
                    worker.save()
                    if worker.last_sample_ns is not None:
                        status = worker.analyser.status(worker.last_sample_ns)
                        status.append(self._open_alerts(worker.line, worker.last_sample_ns))
                        status += self._rate_outputs(worker.line, worker.last_sample_ns)
                        self.write([model_point(worker.line, output) for output in status])
                except Exception:
                    log.exception("snapshot failed", extra={"line": worker.line})


def _line_topics(namespaces: Iterable[Namespace]) -> list[str]:
    """The bus and retained-state topic filters of each line's namespace."""
    return [topic for ns in namespaces for topic in (ns.bus("+"), ns.state("+"))]
