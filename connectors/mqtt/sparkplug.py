"""Sparkplug B state per edge node: births, deaths, aliases and the 0-255 ``seq``.

Follows the Sparkplug 3.0 specification: NBIRTH starts a session (``seq`` 0, ``bdSeq`` metric), DBIRTH
declares a device's metrics with their aliases, NDATA/DDATA may name metrics by alias only, NDEATH with a
matching ``bdSeq`` ends the session. A ``seq`` that does not follow the previous one (mod 256), data
before a birth, or an unknown alias means this host missed something: the missing messages are counted
as a gap and a rebirth is requested (NCMD ``Node Control/Rebirth``), after which aliases are fresh.

Device IDs are channels. A metric's full name identifies its series: it is the signal, unless the source's
``metric_pattern`` names the signal (and the channel) within it; two metrics of one device that would land
in one series are refused (``ambiguous_metric``) rather than overwrite each other. A signal's unit is the
tag map's, else the ``engUnit`` property the metric carried in its birth certificate. Metrics whose
signal ends in ``cell_id``, ``roll_id``/``cathode_roll_id`` are context that a device keeps until it
changes (DDATA carries only changed metrics); one ending in ``seq`` is the channel's own sequence number
(``Sample.seq``); null metrics carry no measurement and are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from connectors.validate import TimeWindow, number
from core.errors import RejectedInput
from core.sample import Sample
from core.sparkplug import DataType, MessageType, Payload, Topic
from core.units import Conversion, UnitError, conversion

REBIRTH = "Node Control/Rebirth"
_CONTEXT = {"seq": "seq", "cell_id": "cell_id", "roll_id": "roll_id", "cathode_roll_id": "roll_id"}
_SIGNED_BITS = {DataType.INT8: 8, DataType.INT16: 16, DataType.INT32: 32, DataType.INT64: 64}


@dataclass
class EdgeNode:
    """What a host knows of one edge node between its birth and death."""

    bd_seq: int | None = None
    seq: int | None = None
    aliases: dict[int, tuple[str, int]] = field(default_factory=dict)
    #: (device, channel) -> its context (cell, roll, seq)
    context: dict[tuple[str | None, str | None], dict[str, object]] = field(default_factory=dict)
    #: metric full name -> its birth certificate's engUnit
    units: dict[str, str] = field(default_factory=dict)
    #: (device, channel, signal) -> the full metric name that owns that series
    series: dict[tuple[str | None, str | None, str], str] = field(default_factory=dict)

    def forget_births(self) -> None:
        """A new NBIRTH (or the node's death) declares the metrics afresh: aliases, units, series owners."""
        self.aliases.clear()
        self.units.clear()
        self.series.clear()


#: a seq at most this far behind the node's last is a redelivery, not a wrap-around gap of ~256
REDELIVERY_WINDOW = 64


@dataclass
class Outcome:
    """What one message produced: samples, missing messages, and whether to ask for a rebirth."""

    samples: list[Sample] = field(default_factory=list)
    missing: int = 0
    #: a message this host had already (its seq at or just behind the node's): handed over once only
    redelivered: bool = False
    rebirth: bool = False
    rejects: list[RejectedInput] = field(default_factory=list)


def rebirth_request(topic: Topic) -> tuple[str, bytes]:
    """The NCMD topic and payload that ask an edge node to publish its births again."""
    payload = Payload()
    metric = payload.metrics.add()
    metric.name = REBIRTH
    metric.datatype = DataType.BOOLEAN
    metric.boolean_value = True
    return str(Topic(topic.group_id, MessageType.NCMD, topic.edge_node_id)), payload.SerializeToString()


class SparkplugHost:
    """Decode Sparkplug B messages of many edge nodes into samples."""

    def __init__(
        self,
        line: str,
        machine: str,
        units: dict[str, str],
        window: TimeWindow,
        metric_pattern: str | None = None,
    ) -> None:
        self.line = line
        self.machine = machine
        self.units = units
        self.window = window
        self.pattern = re.compile(metric_pattern) if metric_pattern else None
        self.nodes: dict[tuple[str, str], EdgeNode] = {}
        #: (engUnit, stored unit) -> the conversion, None for one unit, or why there is none
        self._conversions: dict[tuple[str, str], Conversion | str | None] = {}

    def handle(self, topic: Topic, data: bytes, receive_time_ns: int) -> Outcome:
        """Handle one message. Raises ``RejectedInput`` when the whole message is unusable."""
        try:
            payload = Payload.FromString(data)
        except DecodeError as exc:
            raise RejectedInput("malformed_protobuf", str(exc)) from None
        kind = topic.message_type
        if kind in (MessageType.NCMD, MessageType.DCMD):
            return Outcome()
        node = self.nodes.setdefault((topic.group_id, topic.edge_node_id), EdgeNode())
        if kind is MessageType.NDEATH:
            return self._death(node, payload)
        if not payload.HasField("seq"):
            raise RejectedInput("malformed_protobuf", f"{kind} without seq")
        outcome = Outcome()
        if kind is MessageType.NBIRTH:
            node.forget_births()
            node.bd_seq = next((int(m.long_value) for m in payload.metrics if m.name == "bdSeq"), None)
            node.seq = payload.seq
            self._learn(node, payload)
            return outcome
        if node.seq is None:
            raise _RejectWithRebirth("no_birth", f"{kind} from {topic.edge_node_id} before its NBIRTH")
        expected = (node.seq + 1) % 256
        if (node.seq - payload.seq) % 256 < REDELIVERY_WINDOW:
            outcome.redelivered = True  # a broker restoring its snapshot resends what was delivered
            return outcome
        if payload.seq != expected:
            outcome.missing = (payload.seq - expected) % 256
            outcome.rebirth = True
        node.seq = payload.seq
        if kind is MessageType.DBIRTH:
            self._learn(node, payload)
        if kind is MessageType.DDEATH:
            return outcome
        channel = topic.device_id
        source = f"{topic.group_id}/{topic.edge_node_id}" + (f"/{channel}" if channel else "")
        self._samples(node, payload, channel, source, receive_time_ns, outcome)
        return outcome

    def _death(self, node: EdgeNode, payload: Payload) -> Outcome:
        bd_seq = next((int(m.long_value) for m in payload.metrics if m.name == "bdSeq"), None)
        if node.bd_seq is None or bd_seq == node.bd_seq:
            node.seq = None
            node.forget_births()
        return Outcome()

    @staticmethod
    def _learn(node: EdgeNode, payload: Payload) -> None:
        for metric in payload.metrics:
            if metric.HasField("alias") and metric.name:
                node.aliases[metric.alias] = (metric.name, metric.datatype)
            if metric.name and metric.HasField("properties"):
                props = metric.properties
                for key, value in zip(props.keys, props.values, strict=False):
                    if key == "engUnit" and value.WhichOneof("value") == "string_value":
                        node.units[metric.name] = value.string_value

    def _series(self, full_name: str, device: str | None) -> tuple[str | None, str]:
        """(channel, signal) of a metric; ``unknown_signal`` when the source's pattern does not match."""
        if self.pattern is None:
            return device, full_name
        match = self.pattern.fullmatch(full_name)
        if match is None:
            raise RejectedInput("unknown_signal", f"metric {full_name!r} does not match the metric pattern")
        groups = match.groupdict()
        return groups.get("channel") or device, groups.get("signal") or full_name

    def _samples(
        self,
        node: EdgeNode,
        payload: Payload,
        channel: str | None,
        source: str,
        receive_time_ns: int,
        outcome: Outcome,
    ) -> None:
        device = channel
        for (owner, _), context in node.context.items():
            if owner == device:
                context.pop("seq", None)
        values = []
        for metric in payload.metrics:
            try:
                full_name, datatype = self._identify(node, metric)
                if metric.is_null or metric.WhichOneof("value") is None or full_name == "bdSeq":
                    continue
                channel, name = self._series(full_name, device)
            except RejectedInput as exc:
                outcome.rejects.append(exc)
                outcome.rebirth = outcome.rebirth or exc.reason == "unknown_alias"
                continue
            key = name.rsplit("/", 1)[-1]
            if key in _CONTEXT:
                node.context.setdefault((device, channel), {})[_CONTEXT[key]] = _value(metric, datatype)
            else:
                values.append((full_name, channel, name, datatype, metric))
        for full_name, channel, name, datatype, metric in values:
            context = node.context.get((device, channel), {})
            seq = context.get("seq")
            try:
                owner = node.series.setdefault((device, channel, name), full_name)
                if owner != full_name:
                    raise RejectedInput(
                        "ambiguous_metric",
                        f"metrics {owner!r} and {full_name!r} would both be {self.machine} {name}"
                        + (f" of {channel}" if channel else ""),
                    )
                sent_in = node.units.get(full_name)
                unit = self.units.get(name) or sent_in
                if unit is None:
                    raise RejectedInput(
                        "unknown_signal", f"{self.machine} has no signal {name!r} (no unit, no engUnit)"
                    )
                value = number(_value(metric, datatype))
                conversion = None if sent_in is None else self._conversion(sent_in, unit)
                stamp = metric.timestamp if metric.HasField("timestamp") else payload.timestamp
                if not stamp:
                    raise RejectedInput("missing_timestamp", f"metric {name}")
                outcome.samples.append(
                    Sample(
                        self.line,
                        self.machine,
                        name,
                        value if conversion is None else conversion(value),
                        unit,
                        self.window.check(stamp * 1_000_000, receive_time_ns),
                        receive_time_ns,
                        source=source,
                        seq=seq if isinstance(seq, int) else None,
                        channel=channel,
                        roll_id=_text(context.get("roll_id")),
                        cell_id=_text(context.get("cell_id")),
                        source_unit=None if conversion is None else sent_in,
                    )
                )
            except RejectedInput as exc:
                outcome.rejects.append(exc)

    def _conversion(self, sent_in: str, unit: str) -> Conversion | None:
        """From a birth certificate's engUnit into the tag map's unit; ``unit_mismatch`` if impossible."""
        key = (sent_in, unit)
        if key not in self._conversions:
            try:
                self._conversions[key] = conversion(sent_in, unit)
            except UnitError as exc:
                self._conversions[key] = str(exc)
        found = self._conversions[key]
        if isinstance(found, str):
            raise RejectedInput(
                "unit_mismatch", f"engUnit {sent_in!r} against the tag map's {unit!r}: {found}"
            )
        return found

    @staticmethod
    def _identify(node: EdgeNode, metric: Payload.Metric) -> tuple[str, int]:
        if metric.name:
            known = next((dt for name, dt in node.aliases.values() if name == metric.name), None)
            return metric.name, metric.datatype or known or 0
        if metric.HasField("alias") and metric.alias in node.aliases:
            return node.aliases[metric.alias]
        raise RejectedInput("unknown_alias", f"alias {metric.alias}")


class _RejectWithRebirth(RejectedInput):
    """A reject after which the edge node must be asked for its births."""


def needs_rebirth(error: RejectedInput) -> bool:
    return isinstance(error, _RejectWithRebirth)


def _value(metric: Payload.Metric, datatype: int) -> object:
    kind = metric.WhichOneof("value")
    if kind is None or metric.is_null:
        return None
    value = getattr(metric, kind)
    bits = _SIGNED_BITS.get(DataType(datatype)) if datatype in DataType._value2member_map_ else None
    if bits and isinstance(value, int) and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
