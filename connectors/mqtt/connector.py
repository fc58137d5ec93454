"""The MQTT connector: subscribe to the tag map's topics, normalise, check sequences, hand over.

The client's network I/O runs on the asyncio loop (``connectors.mqtt.aioloop``), so the handlers run on
the loop too and hand their points straight to the pipeline.

QoS 1 with a persistent session (clean_start False, session expiry) and manual acknowledgement: a
message's PUBACK is sent only once its samples are in InfluxDB or the disk spool, so a kill -9 of this
process makes the broker deliver the unacknowledged messages again at the next start. Each JSON
channel's sequence survives a restart too (``connectors.mqtt.sequences``), so what the broker lost
while this process was down is a counted gap, not a silent one.

Several processes split the sources with ``ingest.partition``/``ingest.partitions``: a source (JSON:
machine and channel; Sparkplug: edge node) belongs to partition ``crc32(source) % partitions``, so each
source's messages stay in order on one process and its sequence checks hold. Each process subscribes to
its share's topics only, where the tag map allows it (``connectors.mqtt.partitions``); on a filter that
carries other partitions' messages too, those are acknowledged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from connectors.accounting import Accounting
from connectors.mqtt import jsonpayload
from connectors.mqtt.aioloop import AsyncioNetwork
from connectors.mqtt.client import (
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    connack_refusal,
    connect,
    make_client,
)
from connectors.mqtt.partitions import json_source, partition_of, sparkplug_source, subscriptions
from connectors.mqtt.sequences import WRITE_INTERVAL_S, ChannelSequence, SequenceFile
from connectors.mqtt.sparkplug import SparkplugHost, needs_rebirth, rebirth_request
from connectors.pipeline import Handover, Pipeline
from connectors.tagmap import MqttSource, TagMap
from connectors.validate import TimeWindow
from core.errors import RejectedInput
from core.influx.lineprotocol import process_fields, process_series
from core.influx.writer import Ack
from core.sample import Sample
from core.settings import Settings
from core.sparkplug import Topic
from core.units import Conversion

log = logging.getLogger(__name__)

CONNECTOR = "mqtt"
REBIRTH_HOLDOFF_S = 5.0
ROUTE_CACHE_SIZE = 10_000
#: Source label of messages on topics outside the tag map: one label, so stray topics cannot blow up the
#: metrics' cardinality; the topic itself is in the (rate-limited) log line.
UNMATCHED = "unmatched"


@dataclass(frozen=True, slots=True)
class Route:
    """A topic's tag map entry and what follows from it, worked out once per topic."""

    config: MqttSource
    source: str
    channel: str | None
    mine: bool
    ignore: frozenset[str]
    reject: Callable[[RejectedInput], None]
    #: signal -> its conversion into the stored unit, for signals sent in another unit
    convert: dict[str, Conversion]
    #: Line protocol up to the value, per (channel, quality) and signal: the unit follows from the
    #: signal here, so two short-key lookups replace ``process_series``'s six-argument cache per value.
    series: dict[tuple[str | None, str], dict[str, str]] = field(default_factory=dict)


class MqttConnector:
    """Owns one paho client; its callbacks run on the loop and hand samples to the pipeline."""

    def __init__(
        self, settings: Settings, tagmap: TagMap, pipeline: Pipeline, accounting: Accounting
    ) -> None:
        self.settings = settings
        self.sources = tagmap.mqtt
        self.pipeline = pipeline
        self.accounting = accounting
        self.window = TimeWindow.from_settings(settings.ingest)
        ingest = settings.ingest
        client_id = (
            f"{settings.mqtt.client_id_prefix}-ingest-{settings.line}-{ingest.partition}of{ingest.partitions}"
        )
        self.client = make_client(settings.mqtt, client_id)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.subscribed = asyncio.Event()
        self.network: AsyncioNetwork | None = None
        self._sequence_file = SequenceFile(settings.influx.spool_dir / "mqtt-sequences" / f"{client_id}.json")
        self._sequences = self._sequence_file.load()
        self._sequence_flush: asyncio.TimerHandle | None = None
        #: source -> the channel's sequence as far as its points are durable: what the file keeps
        self._durable = {s: ChannelSequence(q.run, q.last, list(q.gaps)) for s, q in self._sequences.items()}
        self._hosts = {
            id(source): SparkplugHost(
                settings.line, source.machine, source.units, self.window, source.metric_pattern
            )
            for source in self.sources
            if source.format == "sparkplug"
        }
        self._rebirth_asked: dict[str, float] = {}
        self._routes: dict[str, Route | None] = {}
        self._max_payload = settings.ingest.max_payload_bytes
        self.subscriptions = subscriptions(self.sources, ingest.partition, ingest.partitions)
        if ingest.partitions > 1:
            for shared in sorted({s.topic for s in self.subscriptions if s.shared}):
                log.warning(
                    "MQTT filter %s cannot be split between ingest processes (list its channels in the "
                    "tag map): every process receives all of it and keeps its own share",
                    shared,
                )

    async def run(self) -> None:
        """Connect and keep connected (back-off after a loss) until cancelled; a refusal no retry can
        cure (credentials, an untrusted certificate) ends it with ``MqttRefused``."""
        connect(self.client, self.settings.mqtt, persistent=True)
        self.network = AsyncioNetwork(self.client, RECONNECT_MIN_S, RECONNECT_MAX_S)
        await self.network.run()

    def pause(self) -> None:
        """Take no more messages; acknowledgements of those taken still go out at :meth:`stop`."""
        if self.network is not None:
            self.network.pause()

    async def stop(self) -> None:
        if self.network is not None:
            await self.network.stop()
        if self._sequence_flush is not None:
            self._sequence_flush.cancel()
        self._flush_sequences()

    def _acked(self, source: str, run: str | None, seq: int, ack: Ack) -> None:
        """The message's points are durable: acknowledge it, and its channel's sequence may advance."""
        ack()
        known, durable = self._sequences.get(source), self._durable.get(source)
        if durable is None or durable.run != run:
            durable = self._durable[source] = ChannelSequence(run, seq)
        durable.last = max(durable.last, seq)
        if known is not None and known.run == run:
            durable.gaps = [g for g in known.gaps if g[1] < durable.last]
        if not self._sequence_file.save(self._durable) and self._sequence_flush is None:
            # the last of a burst is written too, a second on, so a kill after it counts no false gap
            self._sequence_flush = asyncio.get_running_loop().call_later(
                WRITE_INTERVAL_S, self._flush_sequences
            )

    def _flush_sequences(self) -> None:
        self._sequence_flush = None
        self._sequence_file.save(self._durable, force=True)

    def _on_connect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        if reason.is_failure:
            refused = connack_refusal(client, reason)
            if refused is not None and self.network is not None:
                self.network.fail(refused)
            else:
                log.warning(
                    "MQTT connect refused, retrying: %s", reason, extra={"host": self.settings.mqtt.host}
                )
            return
        log.info("MQTT connected", extra={"host": self.settings.mqtt.host, "port": self.settings.mqtt.port})
        filters = sorted({s.topic for s in self.subscriptions})
        if filters:
            client.subscribe([(topic, 1) for topic in filters])

    def _on_disconnect(
        self, client: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, properties: object
    ) -> None:
        self.subscribed.clear()
        log.warning("MQTT disconnected: %s", reason, extra={"host": self.settings.mqtt.host})

    def _on_subscribe(
        self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode], properties: object
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            log.error("MQTT subscription refused: %s", ", ".join(refused))
        else:
            self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        ack = partial(client.ack, message.mid, message.qos)
        receive_time = time.time_ns()
        topic = message.topic
        route = self._routes.get(topic) or self._route(topic)
        try:
            if route is None:
                raise RejectedInput("unknown_topic", topic)
            if route.config.format == "sparkplug":
                self._sparkplug(route.config, topic, bytes(message.payload), receive_time, ack)
            else:
                self._json(route, bytes(message.payload), receive_time, ack)
        except RejectedInput as exc:
            self.accounting.reject(CONNECTOR, UNMATCHED if route is None else route.source, exc)
            ack()

    def _route(self, topic: str) -> Route | None:
        """What a topic maps to; cached, since a plant reuses a few hundred topics all day."""
        if topic in self._routes:
            return self._routes[topic]
        config = next((s for s in self.sources if mqtt.topic_matches_sub(s.topic, topic)), None)
        route = None if config is None else self._new_route(config, topic)
        if len(self._routes) < ROUTE_CACHE_SIZE:
            self._routes[topic] = route
        return route

    def _new_route(self, config: MqttSource, topic: str) -> Route:
        levels = topic.split("/")
        channel = (
            levels[config.channel_level]
            if config.format == "json"
            and config.channel_level is not None
            and config.channel_level < len(levels)
            else None
        )
        if config.format == "sparkplug":
            source = sparkplug_source(levels)
        else:
            source = json_source(config.machine, channel)
        return Route(
            config,
            source,
            channel,
            self._mine(source),
            frozenset(config.ignore),
            partial(self.accounting.reject, CONNECTOR, source),
            config.conversions(),
        )

    def _mine(self, source: str) -> bool:
        ingest = self.settings.ingest
        return ingest.partitions == 1 or partition_of(source, ingest.partitions) == ingest.partition

    def _check_size(self, payload: bytes) -> None:
        if len(payload) > self._max_payload:
            raise RejectedInput("oversized_payload", f"{len(payload)} bytes")

    def _json(self, route: Route, payload: bytes, receive_time: int, ack: Ack) -> None:
        """Line protocol straight from the records: no Sample per value unless the bus wants them."""
        if not route.mine:
            self.accounting.other_partition.inc()
            ack()
            return
        self._check_size(payload)
        config, source = route.config, route.source
        records = jsonpayload.parse(
            payload,
            machine=config.machine,
            channel=route.channel,
            units=config.units,
            window=self.window,
            receive_time_ns=receive_time,
            reject=route.reject,
            ignore=route.ignore,
            convert=route.convert,
        )
        bus = self.pipeline.bus is not None
        series = route.series
        lines: list[str] = []
        times: list[int] = []
        samples: list[Sample] = []
        newest: int | None = None
        run: str | None = None
        for record in records:
            seq = record.seq
            if seq is not None:
                if not self._check_sequence(source, record.run, seq):
                    continue  # a redelivery of what this process has handed over already
                newest, run = seq if newest is None or run != record.run else max(newest, seq), record.run
            values = record.values
            if not values:
                continue
            time_ns = record.time_ns
            fields = process_fields(seq, record.roll_id, record.cell_id, time_ns)
            prefixes = series.get((record.channel, record.quality)) or self._prefixes(route, record)
            for signal, value, _ in values:
                lines.append(f"{prefixes[signal]}{value!r}{fields}")
            times += [time_ns] * len(values)
            if bus:
                samples += record.samples(
                    self.settings.line, config.machine, source, receive_time, config.source_units
                )
        if newest is not None:
            ack = partial(self._acked, source, run, newest, ack)
        if lines:
            self.pipeline.hand_over(Handover(CONNECTOR, source, lines, times, samples, ack))
        else:
            ack()

    def _prefixes(self, route: Route, record: jsonpayload.Record) -> dict[str, str]:
        """The line protocol up to the value of each tag-mapped signal, for one (channel, quality)."""
        line, machine = self.settings.line, route.config.machine
        sent_in = route.config.source_units
        prefixes = route.series[(record.channel, record.quality)] = {
            signal: process_series(
                line, machine, record.channel, signal, unit, record.quality, sent_in.get(signal)
            )
            for signal, unit in route.config.units.items()
        }
        return prefixes

    def _check_sequence(self, source: str, run: str | None, seq: int) -> bool:
        """Count missing sequence numbers; a new ``run`` starts afresh. A number seen already is a
        redelivery (a broker restoring its last snapshot after a crash sends what was delivered since):
        counted as ``redelivered`` and False, so it is not handed over twice. A number that was skipped
        and arrives after all is ``late`` and handed over (``seq_gaps`` minus ``late`` is what is missing)."""
        known = self._sequences.get(source)
        if known is None or known.run != run:
            self._sequences[source] = ChannelSequence(run, seq)
            return True
        if seq <= known.last:
            if known.fill(seq):
                self.accounting.count("late", CONNECTOR, source, 1)
                return True
            self.accounting.count("redelivered", CONNECTOR, source, 1)
            return False
        if seq > known.last + 1:
            missing = seq - known.last - 1
            self.accounting.count("seq_gaps", CONNECTOR, source, missing)
            log.warning("sequence gap", extra={"source": source, "after": known.last, "got": seq})
            known.skip(known.last + 1, seq - 1)
        known.last = seq
        return True

    def _sparkplug(self, config: MqttSource, topic: str, payload: bytes, receive_time: int, ack: Ack) -> None:
        try:
            parsed = Topic.parse(topic)
        except ValueError as exc:
            raise RejectedInput("unknown_topic", str(exc)) from None
        node = f"{parsed.group_id}/{parsed.edge_node_id}"
        if not self._mine(node):
            self.accounting.other_partition.inc()
            ack()
            return
        self._check_size(payload)
        host = self._hosts[id(config)]
        try:
            outcome = host.handle(parsed, payload, receive_time)
        except RejectedInput as exc:
            if needs_rebirth(exc):
                self._ask_rebirth(parsed, node)
            raise
        source = f"{node}/{parsed.device_id}" if parsed.device_id else node
        if outcome.redelivered:
            self.accounting.count("redelivered", CONNECTOR, node, 1)
        if outcome.missing:
            self.accounting.count("seq_gaps", CONNECTOR, node, outcome.missing)
            log.warning("Sparkplug seq gap", extra={"source": node, "missing": outcome.missing})
        for error in outcome.rejects:
            self.accounting.reject(CONNECTOR, source, error)
        if outcome.rebirth:
            self._ask_rebirth(parsed, node)
        self._hand_over(outcome.samples, ack)

    def _ask_rebirth(self, topic: Topic, node: str) -> None:
        now = time.monotonic()
        if now - self._rebirth_asked.get(node, -REBIRTH_HOLDOFF_S) < REBIRTH_HOLDOFF_S:
            return
        self._rebirth_asked[node] = now
        ncmd_topic, payload = rebirth_request(topic)
        self.client.publish(ncmd_topic, payload, qos=0)
        log.info("Sparkplug rebirth requested", extra={"source": node})

    def _hand_over(self, samples: list[Sample], ack: Ack) -> None:
        if samples:
            self.pipeline.submit(CONNECTOR, samples, ack)
        else:
            ack()
