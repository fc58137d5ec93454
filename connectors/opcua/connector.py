"""The OPC UA connector: one session per endpoint, a subscription with monitored items, reconnect.

Subscriptions, not polling: every mapped node is a monitored item (sampling interval, queue size and an
absolute DataChangeFilter deadband from ``[opcua]``), so the server queues each change with its
SourceTimestamp and StatusCode. The machine's ``ScanCounter`` is monitored too: each tick gives all of a
machine's values one SourceTimestamp and a new counter value, which becomes the values' ``seq``.

On connection loss the connector reconnects with exponential backoff (``reconnect_min_s`` doubling to
``reconnect_max_s``, cut short when the server's port accepts again: ``core.backoff``), creates the
subscription again (its first notifications carry the current values). Ticks missed while disconnected,
between a read and the subscription's start, or while ingest was
down (``connectors.opcua.cursor`` keeps where the stream stood), are read back with HistoryRead where the
server keeps history; elsewhere they stay missing (counted as ``seq_gaps`` from the ScanCounter jump) rather
than being bridged by invented values. The subscription queue never drops silently: when it overflows the
session is dropped and re-established, which shows up as a gap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlparse

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, Subscription

from connectors.accounting import Accounting
from connectors.opcua.cursor import Cursor
from connectors.opcua.discover import discover
from connectors.opcua.security import configure, refusal
from connectors.pipeline import Pipeline
from connectors.tagmap import OpcUaMachine, is_node_id
from connectors.validate import TimeWindow, number
from core.backoff import wait_or_return
from core.errors import LinetwinError, RejectedInput
from core.sample import Quality, Sample
from core.settings import Settings
from core.units import Conversion

log = logging.getLogger(__name__)

CONNECTOR = "opcua"
OPC_UA_PORT = 4840  # opc.tcp's registered port, when an endpoint names none
_KNOWN_TICKS = 4096


@dataclass
class Tag:
    """What a monitored item means: a signal of a machine, its scan counter, or its roll ID."""

    machine: MachineState
    role: str
    signal: str = ""
    unit: str = ""
    #: from the unit the server sends into ``unit`` (the tag map's ``source_unit``), when they differ
    conversion: Conversion | None = None
    #: the monitored item's absolute deadband and sampling interval; counters and IDs keep 0 (every change)
    deadband_abs: float = 0.0
    sampling_interval_ms: float | None = None


@dataclass
class MachineState:
    name: str
    source: str
    ticks: OrderedDict[int, int] = field(default_factory=OrderedDict)
    last_counter: int | None = None
    roll_id: str | None = None
    pending: list[tuple[Tag, ua.DataValue, int]] = field(default_factory=list)


class OpcUaConnector:
    """Read one OPC UA endpoint into the pipeline until cancelled."""

    def __init__(
        self,
        endpoint: str,
        settings: Settings,
        machines: list[OpcUaMachine],
        pipeline: Pipeline,
        accounting: Accounting,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.machines = machines
        self.pipeline = pipeline
        self.accounting = accounting
        self.window = TimeWindow.from_settings(settings.ingest)
        self.host = urlparse(endpoint).hostname or endpoint
        self.port = urlparse(endpoint).port or OPC_UA_PORT
        self.connected = asyncio.Event()
        #: the newest source time handed over: after a reconnect or a restart, history is read from there
        self.cursor = Cursor(settings.influx.spool_dir / "opcua-cursor", endpoint)
        self.newest_ns = self.cursor.load()
        self.sessions = 0
        self._states: dict[str, MachineState] = {}

    async def run(self) -> None:
        """Connect, subscribe and stream; on any loss back off and start over. Refusals end the run."""
        delay = self.settings.opcua.reconnect_min_s
        while True:
            try:
                await self._session()
                delay = self.settings.opcua.reconnect_min_s
            except LinetwinError:
                raise
            except (OSError, TimeoutError, ConnectionError, ua.UaError, StopAsyncIteration) as exc:
                if (refused := refusal(exc)) is not None:
                    raise refused from None
                log.warning(
                    "OPC UA connection lost: %r", exc, extra={"endpoint": self.endpoint, "retry_s": delay}
                )
            self.connected.clear()
            await wait_or_return(delay, self.host, self.port)
            delay = min(delay * 2, self.settings.opcua.reconnect_max_s)

    async def _session(self) -> None:
        opcua = self.settings.opcua
        client = Client(self.endpoint, timeout=10)
        await configure(client, opcua, readable_key=self.settings.allow_readable_secrets)
        lost = asyncio.Event()

        async def on_lost(exc: Exception) -> None:
            lost.set()

        client.connection_lost_callback = on_lost
        try:
            await client.connect()
        except Exception as exc:
            if (refused := refusal(exc)) is not None:
                raise refused from None
            raise
        try:
            machines = self.machines or await discover(client)
            tags = await self._resolve(client, machines)
            since = self.newest_ns  # where the stream stood: a reconnect, or a restart's cursor
            if not since:
                await self._read_current(client, tags)
            subscription = await client.create_subscription(
                opcua.publishing_interval_ms, queue_maxsize=1_000_000, overflow=OverflowPolicy.DISCONNECT
            )
            await self._monitor(subscription, tags)
            # the notifications queue from here on; history fills in what came before them, in order
            if since or self.newest_ns:
                await self._backfill(client, tags, since or self.newest_ns)
            self.sessions += 1
            self.connected.set()
            log.info("OPC UA subscribed", extra={"endpoint": self.endpoint, "items": len(tags)})
            await self._stream(subscription, tags, lost)
        finally:
            self.connected.clear()
            await _close(client)

    async def _resolve(self, client: Client, machines: list[OpcUaMachine]) -> dict[ua.NodeId, Tag]:
        tags: dict[ua.NodeId, Tag] = {}
        for machine in machines:
            state = self._states.setdefault(
                machine.machine, MachineState(machine.machine, f"{self.host}/{machine.machine}")
            )
            if machine.scan_counter:
                tags[await _node_id(client, machine.scan_counter)] = Tag(state, "scan_counter")
            if machine.roll_id:
                tags[await _node_id(client, machine.roll_id)] = Tag(state, "roll_id")
            opcua = self.settings.opcua
            for item in machine.tags:
                tags[await _node_id(client, item.node)] = Tag(
                    state,
                    "value",
                    item.signal,
                    item.unit,
                    item.conversion(),
                    opcua.deadband_abs if item.deadband_abs is None else item.deadband_abs,
                    item.sampling_interval_ms,
                )
        return tags

    async def _monitor(self, subscription: Subscription, tags: dict[ua.NodeId, Tag]) -> None:
        """Create one monitored item per node through the public low-level API.

        The DataChangeFilter triggers on StatusValueTimestamp, so a tick that repeats a value still
        arrives (with its new SourceTimestamp and ScanCounter) unless the item's absolute deadband
        suppresses it. A deadband is a value tag's only: on a ScanCounter (+1 a tick) a deadband of 1 would
        suppress every tick, and on a RollId it would freeze the roll.
        """
        opcua = self.settings.opcua
        node_ids = list(tags)
        requests = [
            ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting,
                RequestedParameters=ua.MonitoringParameters(
                    ClientHandle=handle,
                    SamplingInterval=(
                        opcua.sampling_interval_ms
                        if tags[node_id].sampling_interval_ms is None
                        else tags[node_id].sampling_interval_ms
                    ),
                    Filter=_filter(tags[node_id].deadband_abs),
                    QueueSize=opcua.queue_size,
                    DiscardOldest=True,
                ),
            )
            for handle, node_id in enumerate(node_ids, start=1)
        ]
        results = await subscription.create_monitored_items(requests)
        failed = [str(node_ids[i]) for i, r in enumerate(results) if isinstance(r, ua.StatusCode)]
        if failed:
            log.warning("OPC UA monitored items refused", extra={"nodes": ",".join(failed[:5])})

    async def _backfill(self, client: Client, tags: dict[ua.NodeId, Tag], since_ns: int) -> None:
        """Read what the server kept while this client was away (HistoryRead, raw) and hand it over as
        if it had arrived: ScanCounter history first, so the values find their ticks and no gap is
        counted. A node without history (``BadHistoryOperationUnsupported`` and the like) keeps its gap,
        visible as ``seq_gaps``. Backfilled values count as ``backfilled``."""
        start = datetime.fromtimestamp((since_ns + 1000) / 1e9, UTC)
        end = max(datetime.now(UTC), await _source_now(client, tags))
        if start >= end:  # nothing new: OPC UA would read backwards
            return
        counters: list[tuple[Tag, ua.DataValue]] = []
        values: list[tuple[Tag, ua.DataValue]] = []
        for node_id, tag in tags.items():
            if tag.role == "roll_id":
                continue
            try:
                history = await client.get_node(node_id).read_raw_history(start, end)
            except (ua.UaStatusCodeError, ua.UaError):
                continue
            (counters if tag.role == "scan_counter" else values).extend((tag, dv) for dv in history)
        if not values:
            return
        counters.sort(key=lambda item: _time_ns(item[1]))
        values.sort(key=lambda item: _time_ns(item[1]))
        per_source: dict[str, int] = {}
        for tag, _ in values:
            per_source[tag.machine.source] = per_source.get(tag.machine.source, 0) + 1
        self._handle(counters + values)
        for source, count in per_source.items():
            self.accounting.count("backfilled", CONNECTOR, source, count)
        log.info(
            "OPC UA gap backfilled from history", extra={"endpoint": self.endpoint, "values": len(values)}
        )

    async def _read_current(self, client: Client, tags: dict[ua.NodeId, Tag]) -> None:
        """One read of every node on a first connect, before the subscription starts, so the state is
        known at once and the ScanCounter only moves forward within a session. A reconnect needs none:
        the subscription's first notifications carry the current values, after what history filled in."""
        params = ua.ReadParameters()
        params.NodesToRead = [
            ua.ReadValueId(NodeId=node_id, AttributeId=ua.AttributeIds.Value) for node_id in tags
        ]
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        values = await client.uaclient.read(params)
        self._handle([(tags[node_id], value) for node_id, value in zip(tags, values, strict=True)])

    async def _stream(
        self, subscription: Subscription, tags: dict[ua.NodeId, Tag], lost: asyncio.Event
    ) -> None:
        while not lost.is_set():
            event = await subscription.next_event(timeout=1.0)
            if event is None:
                continue
            chunk = [event]
            queue = subscription._event_queue
            while queue is not None and not queue.empty() and len(chunk) < 50_000:
                item = queue.get_nowait()
                if item is None:
                    raise ConnectionError("subscription closed")
                chunk.append(item)
            self._handle(
                [
                    (tags[e.node.nodeid], e.data.monitored_item.Value)
                    for e in chunk
                    if isinstance(e, DataChangeEvent) and e.node.nodeid in tags
                ]
            )
        raise ConnectionError("connection to the OPC UA server lost")

    def _handle(self, items: list[tuple[Tag, ua.DataValue]]) -> None:
        """Turn DataValues into samples; ScanCounter values first, so each tick's values find their seq."""
        receive_time = time.time_ns()
        touched: set[str] = set()
        overflowed = [tag for tag, value in items if _overflowed(value)]
        for tag in overflowed:
            self.accounting.count("queue_overflows", CONNECTOR, tag.machine.source, 1)
        if overflowed:
            log.warning(
                "OPC UA queue overflow: the server dropped values of %d item(s)",
                len(overflowed),
                extra={"endpoint": self.endpoint, "signal": overflowed[0].signal or overflowed[0].role},
            )
        for tag, value in items:
            if tag.role == "scan_counter":
                self._tick(tag.machine, value)
            elif tag.role == "roll_id":
                tag.machine.roll_id = (
                    value.Value.Value if value.Value and isinstance(value.Value.Value, str) else None
                )
        samples: list[Sample] = []
        for tag, value in items:
            if tag.role != "value":
                continue
            try:
                source_time = self.window.check(_time_ns(value), receive_time)
            except RejectedInput as exc:
                self.accounting.reject(CONNECTOR, tag.machine.source, exc)
                continue
            tag.machine.pending.append((tag, value, source_time))
            touched.add(tag.machine.name)
        for name in touched:
            samples.extend(self._resolve_pending(self._states[name], receive_time))
        if samples:  # a subscription cannot redeliver: on disk before it counts as received
            self.pipeline.submit(CONNECTOR, samples, journalled=True)
            self.newest_ns = max(self.newest_ns, max(s.source_time_ns for s in samples))
            self.cursor.save(self.newest_ns)

    def _tick(self, machine: MachineState, value: ua.DataValue) -> None:
        counter = value.Value.Value if value.Value else None
        if not isinstance(counter, int) or isinstance(counter, bool):
            return
        machine.ticks[_time_ns(value)] = counter
        while len(machine.ticks) > _KNOWN_TICKS:
            machine.ticks.popitem(last=False)
        if machine.last_counter is not None and counter > machine.last_counter + 1:
            self.accounting.count("seq_gaps", CONNECTOR, machine.source, counter - machine.last_counter - 1)
            log.warning(
                "ScanCounter gap",
                extra={"source": machine.source, "after": machine.last_counter, "got": counter},
            )
        if machine.last_counter is not None and counter < machine.last_counter:
            log.warning(
                "ScanCounter restarted", extra={"source": machine.source, "after": machine.last_counter}
            )
        machine.last_counter = counter

    def _resolve_pending(self, machine: MachineState, receive_time: int) -> list[Sample]:
        """Values whose tick is known get its seq; values older than the newest tick get none."""
        newest = next(reversed(machine.ticks)) if machine.ticks else None
        samples, waiting = [], []
        for tag, value, source_time in machine.pending:
            seq = machine.ticks.get(source_time)
            if seq is None and newest is not None and source_time > newest:
                waiting.append((tag, value, source_time))
                continue
            try:
                samples.append(self._sample(tag, value, source_time, receive_time, seq))
            except RejectedInput as exc:
                self.accounting.reject(CONNECTOR, machine.source, exc)
        machine.pending = waiting
        return samples

    def _sample(
        self, tag: Tag, value: ua.DataValue, source_time: int, receive_time: int, seq: int | None
    ) -> Sample:
        raw = value.Value.Value if value.Value else None
        if raw is None:
            raise RejectedInput("no_value", f"{tag.machine.name}.{tag.signal}")
        status = value.StatusCode.value if value.StatusCode is not None else 0
        converted, source_unit = number(raw), None
        if tag.conversion is not None:
            converted, source_unit = tag.conversion(converted), tag.conversion.source
        return Sample(
            self.settings.line,
            tag.machine.name,
            tag.signal,
            converted,
            tag.unit,
            source_time,
            receive_time,
            Quality.from_status_code(status),
            tag.machine.source,
            seq,
            roll_id=tag.machine.roll_id,
            source_unit=source_unit,
        )


_INFO_TYPE_MASK, _INFO_TYPE_DATA_VALUE, _OVERFLOW = 0x0C00, 0x0400, 0x0080  # OPC UA Part 4, 7.39


def _overflowed(value: ua.DataValue) -> bool:
    """The StatusCode's Overflow info bit: the server's queue for this item dropped values before it."""
    status = value.StatusCode.value if value.StatusCode is not None else 0
    return status & _INFO_TYPE_MASK == _INFO_TYPE_DATA_VALUE and bool(status & _OVERFLOW)


def _filter(deadband_abs: float) -> ua.DataChangeFilter:
    return ua.DataChangeFilter(
        Trigger=ua.DataChangeTrigger.StatusValueTimestamp,
        DeadbandType=ua.DeadbandType.Absolute if deadband_abs > 0 else ua.DeadbandType.None_,
        DeadbandValue=deadband_abs,
    )


async def _source_now(client: Client, tags: dict[ua.NodeId, Tag]) -> datetime:
    """The newest source timestamp of the machines' current values (their ScanCounters, if they have
    any): where history ends on a source whose clock runs ahead of ours, a simulator at speed."""
    counters = [node_id for node_id, tag in tags.items() if tag.role == "scan_counter"] or list(tags)
    values = await client.read_attributes([client.get_node(n) for n in counters], ua.AttributeIds.Value)
    times = [dv.SourceTimestamp for dv in values if dv.SourceTimestamp is not None]
    return max((t if t.tzinfo else t.replace(tzinfo=UTC) for t in times), default=datetime.now(UTC))


async def _close(client: Client) -> None:
    """Disconnect without hanging: after a loss asyncua's disconnect can wait on a dead socket and
    ignore cancellation, so it gets its own task and two seconds."""
    closing = asyncio.create_task(client.disconnect())
    closing.add_done_callback(lambda task: task.cancelled() or task.exception())
    await asyncio.wait({closing}, timeout=2)


def _time_ns(value: ua.DataValue) -> int:
    stamp: datetime | None = value.SourceTimestamp or value.ServerTimestamp
    if stamp is None:
        raise RejectedInput("missing_timestamp", "DataValue without SourceTimestamp")
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


async def _node_id(client: Client, node: str) -> ua.NodeId:
    """A NodeId string as is; a browse path resolved from the Objects folder, segment by segment."""
    if is_node_id(node):
        return ua.NodeId.from_string(node)
    current = client.nodes.objects
    for segment in node.strip("/").split("/"):
        namespace, _, name = segment.rpartition(":")
        children = await current.get_children_descriptions()
        match = next(
            (
                c
                for c in children
                if c.BrowseName.Name == name
                and (not namespace or c.BrowseName.NamespaceIndex == int(namespace))
            ),
            None,
        )
        if match is None:
            raise RejectedInput("unknown_node", f"{node}: no {segment!r} below {current.nodeid.to_string()}")
        current = client.get_node(match.NodeId)
    return current.nodeid
