"""Formation cyclers on MQTT: JSON on Unified Namespace topics by default, Sparkplug B as the option.

paho-mqtt runs its network loop in its own thread (``loop_start``); everything else happens on the
caller's thread. Requests that arrive on paho's thread (reconnects, Sparkplug rebirth commands) only set
flags the runner acts on at its next tick, so message order and sequence numbers have one owner.
Topic and payload layout: docs/address-space.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core import linedesc, units
from core.errors import ConfigError, LinetwinError
from core.linedesc import LineDescription
from core.settings import Settings
from core.sparkplug import DataType, MessageType, Payload, Topic
from plant.formation import Cell, CyclerSample, OcvReading

log = logging.getLogger(__name__)

QOS = 1
REBIRTH = "Node Control/Rebirth"
#: what a record carries beside its values: never renamed, never converted
CONTEXT = frozenset({"cell_id", "channel", "cathode_roll_id", "formation_start", "formation_end"})

# Sparkplug device metrics: (name, datatype); alias = 100 * channel number + index
DEVICE_METRICS: tuple[tuple[str, DataType], ...] = (
    ("voltage", DataType.DOUBLE),
    ("current", DataType.DOUBLE),
    ("temperature", DataType.DOUBLE),
    ("step", DataType.INT32),
    ("capacity", DataType.DOUBLE),
    ("cell_id", DataType.STRING),
    ("result/charge_capacity", DataType.DOUBLE),
    ("result/discharge_capacity", DataType.DOUBLE),
    ("result/first_cycle_efficiency", DataType.DOUBLE),
    ("result/cathode_roll_id", DataType.STRING),
    ("result/position_m", DataType.DOUBLE),
    ("result/cell_id", DataType.STRING),
    ("ocv/ocv", DataType.DOUBLE),
    ("ocv/age_days", DataType.DOUBLE),
    ("ocv/k_value", DataType.DOUBLE),
    ("ocv/cell_id", DataType.STRING),
)
_METRIC_INDEX = {name: i for i, (name, _) in enumerate(DEVICE_METRICS)}
_METRIC_TYPE = dict(DEVICE_METRICS)


@dataclass(frozen=True, slots=True)
class Naming:
    """The cyclers of one formation step in its description's names and units.

    ``fields`` maps each value the simulated cyclers make (their own names, ``lines/pilot-nmc.toml``) to
    the described signal in the same role with the conversion into its unit; a value the description
    does not list is not sent, as a real cycler sends only what it is configured to.
    """

    step: str
    fields: dict[str, tuple[str, float, float]]

    def dress(self, values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in values.items():
            if name in CONTEXT:
                out[name] = value
            elif (renamed := self.fields.get(name)) is not None:
                described, scale, offset = renamed
                out[described] = value if value is None else value * scale + offset
        return out


def naming(description: LineDescription, step_id: str) -> Naming:
    """``step_id``'s names and units for the cyclers' values (ConfigError for an inconvertible unit)."""
    own = next(s for s in linedesc.load().steps if s.kind == "formation")
    step = description.step(step_id)
    if step is None or step.kind != "formation":
        raise ConfigError(f"{step_id} is not a formation step of line {description.line}")
    fields = {}
    for signal in step.signals:
        source = own.signal(signal.role or signal.name)
        if source is None:
            continue
        try:
            conversion = units.converter(source.unit, signal.unit)
        except units.UnitError as exc:
            raise ConfigError(f"step {step_id} {signal.name}: {exc}") from None
        fields[source.name] = (signal.name, conversion.scale, conversion.offset)
    return Naming(step_id, fields)


class BrokerUnavailable(LinetwinError):
    """The cyclers cannot reach the MQTT broker."""


def epoch_ms(when: datetime) -> int:
    return round(when.timestamp() * 1000)


def result_fields(cell: Cell, start_ms: int, end_ms: int) -> dict[str, Any]:
    return {
        "cell_id": cell.cell_id,
        "channel": cell.channel,
        "cathode_roll_id": cell.material.roll_id,
        "position_m": cell.material.position_m,
        "formation_start": start_ms,
        "formation_end": end_ms,
        "charge_capacity": round(cell.charge_capacity, 6),
        "discharge_capacity": round(cell.discharge_capacity, 6),
        "first_cycle_efficiency": round(100 * cell.discharge_capacity / cell.charge_capacity, 4),
    }


class _Link:
    """One paho client with a Last Will; ``connect`` blocks until the broker accepted the session."""

    def __init__(
        self, settings: Settings, client_id: str, will_topic: str, will_payload: bytes, retain: bool
    ):
        cfg = settings.mqtt
        self.host, self.port = cfg.host, cfg.port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        if cfg.username:
            self.client.username_pw_set(
                cfg.username, cfg.password.get_secret_value() if cfg.password else None
            )
        if cfg.tls:
            self.client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        self.client.will_set(will_topic, will_payload, qos=QOS, retain=retain)
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.keepalive = cfg.keepalive_s
        self.connected = threading.Event()
        self.rebirth = threading.Event()
        self.subscriptions: list[str] = []
        self.on_session_lost: Callable[[], None] | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            for topic in self.subscriptions:
                client.subscribe(topic, qos=QOS)
            self.connected.set()
            self.rebirth.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning(
                "MQTT connection lost; reconnecting, messages are queued", extra={"reason": str(reason)}
            )
            if self.on_session_lost is not None:
                self.on_session_lost()

    def connect(self, timeout_s: float = 10.0) -> None:
        try:
            self.client.connect(self.host, self.port, keepalive=self.keepalive)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot reach MQTT broker {self.host}:{self.port}: {exc}") from None
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            self.client.loop_stop()
            raise BrokerUnavailable(f"MQTT broker {self.host}:{self.port} did not accept the connection")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=QOS, retain=retain)

    def close(self, last: mqtt.MQTTMessageInfo, timeout_s: float = 5.0) -> None:
        """Flush what paho still queues (e.g. after an outage) up to ``last``, then disconnect."""
        if self.connected.wait(timeout_s):
            last.wait_for_publish(timeout=timeout_s)
        self.client.disconnect()
        self.client.loop_stop()


class JsonCyclers:
    """Cycler channels on ``<site>/<area>/<line>/<step>/<channel>/...`` with JSON payloads."""

    def __init__(self, settings: Settings, run: str, channels: list[str], names: Naming) -> None:
        self.root = settings.namespace().step(names.step)
        self.names = names
        self.run = run
        self.channels = channels
        self._seq = dict.fromkeys(channels, 0)
        offline = json.dumps({"state": "offline", "run": run, "ts": None}).encode()
        self.link = _Link(
            settings,
            f"{settings.mqtt.client_id_prefix}-sim-{names.step}-{run}",
            f"{self.root}/state",
            offline,
            True,
        )

    def connect(self) -> None:
        self.link.connect()

    def birth_if_needed(self, ts_ms: int) -> None:
        """(Re)publish the retained online state after every (re)connect."""
        if self.link.rebirth.is_set():
            self.link.rebirth.clear()
            state = {
                "state": "online",
                "run": self.run,
                "ts": ts_ms,
                "channels": self.channels,
                "payload": "json",
            }
            self.link.publish(f"{self.root}/state", json.dumps(state).encode(), retain=True)

    def _send(self, channel: str, kind: str, ts_ms: int, fields: dict[str, Any]) -> None:
        message = {"seq": self._seq[channel], "run": self.run, "ts": ts_ms, **self.names.dress(fields)}
        self._seq[channel] += 1
        self.link.publish(f"{self.root}/{channel}/{kind}", json.dumps(message).encode())

    def sample(self, channel: str, ts_ms: int, s: CyclerSample) -> None:
        self._send(
            channel,
            "data",
            ts_ms,
            {
                "cell_id": s.cell_id,
                "step": s.step,
                "voltage": round(s.voltage, 5),
                "current": round(s.current, 6),
                "temperature": round(s.temperature, 3),
                "capacity": round(s.capacity, 6),
            },
        )

    def result(self, cell: Cell, ts_ms: int, start_ms: int, end_ms: int) -> None:
        self._send(cell.channel, "result", ts_ms, result_fields(cell, start_ms, end_ms))

    def ocv(self, reading: OcvReading, ts_ms: int) -> None:
        fields = {
            "cell_id": reading.cell.cell_id,
            "age_days": reading.age_days,
            "ocv": round(reading.ocv, 6),
            "k_value": None if reading.k_value is None else round(reading.k_value, 4),
        }
        self._send(reading.cell.channel, "ocv", ts_ms, fields)

    def close(self, ts_ms: int) -> None:
        offline = json.dumps({"state": "offline", "run": self.run, "ts": ts_ms}).encode()
        self.link.close(self.link.publish(f"{self.root}/state", offline, retain=True))


class SparkplugCyclers:
    """Edge node ``<step>`` of group ``<site>.<area>.<line>``, one Sparkplug B device per channel."""

    def __init__(self, settings: Settings, run: str, channels: list[str], names: Naming) -> None:
        self.group, self.node = settings.namespace().sparkplug_group, names.step
        self.ndeath_topic = self._topic(MessageType.NDEATH)
        self.names = names
        #: each metric this node sends: its name in the description, by its name at the cyclers
        self.metrics = {
            name: self._renamed(name) for name, _ in DEVICE_METRICS if self._renamed(name) is not None
        }
        self.run = run
        self.channels = channels
        self.bd_seq = 0
        self._seq = 0
        self._last: dict[str, dict[str, Any]] = {ch: {} for ch in channels}
        self.link = _Link(
            settings,
            f"{settings.mqtt.client_id_prefix}-sim-{names.step}-{run}",
            self.ndeath_topic,
            self._death(None),
            False,
        )
        self.link.subscriptions.append(self._topic(MessageType.NCMD))
        self.link.on_session_lost = self._next_session
        self.link.client.on_message = self._on_message

    def _topic(self, kind: MessageType, device: str | None = None) -> str:
        return str(Topic(self.group, kind, self.node, device))

    def _renamed(self, metric: str) -> str | None:
        """``result/charge_capacity`` in the description's name, None if it does not list the value."""
        folder, _, leaf = metric.rpartition("/")
        if leaf in CONTEXT:
            return metric
        renamed = self.names.fields.get(leaf)
        return None if renamed is None else f"{folder}/{renamed[0]}" if folder else renamed[0]

    def connect(self) -> None:
        self.link.connect()

    def _death(self, ts_ms: int | None) -> bytes:
        death = Payload() if ts_ms is None else Payload(timestamp=ts_ms)
        self._add(death, "bdSeq", DataType.UINT64, self.bd_seq)
        return death.SerializeToString()

    def _next_session(self) -> None:
        """The next MQTT session gets the next bdSeq, in its NBIRTH and in its Last Will (paho's thread)."""
        self.bd_seq = (self.bd_seq + 1) % 256
        self.link.client.will_set(self.ndeath_topic, self._death(None), qos=QOS, retain=False)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = Payload()
        try:
            payload.ParseFromString(msg.payload)
        except Exception:  # a malformed command must not kill paho's network thread
            log.warning("undecodable NCMD ignored", extra={"topic": msg.topic})
            return
        if any(m.name == REBIRTH and m.boolean_value for m in payload.metrics):
            log.info("rebirth requested")
            self.link.rebirth.set()

    @staticmethod
    def _add(
        payload: Payload, name: str | None, datatype: DataType, value: Any, alias: int | None = None
    ) -> None:
        """Append a metric; ``value`` None makes it a null metric (known in a birth, no value yet)."""
        metric = payload.metrics.add()
        if name is not None:
            metric.name = name
        if alias is not None:
            metric.alias = alias
        metric.datatype = datatype
        if value is None:
            metric.is_null = True
        elif datatype == DataType.DOUBLE:
            metric.double_value = float(value)
        elif datatype == DataType.INT32:
            metric.int_value = int(value) & 0xFFFFFFFF
        elif datatype == DataType.UINT64:
            metric.long_value = int(value)
        elif datatype == DataType.BOOLEAN:
            metric.boolean_value = bool(value)
        else:
            metric.string_value = str(value)

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) % 256
        return seq

    @staticmethod
    def alias(channel: str, metric: str) -> int:
        return 100 * int(channel[2:]) + _METRIC_INDEX[metric]

    def birth_if_needed(self, ts_ms: int) -> None:
        """NBIRTH then a DBIRTH per channel after connect and on a Node Control/Rebirth command."""
        if not self.link.rebirth.is_set():
            return
        self.link.rebirth.clear()
        self._seq = 0
        nbirth = Payload(timestamp=ts_ms, seq=self._next_seq())
        self._add(nbirth, "bdSeq", DataType.UINT64, self.bd_seq)
        self._add(nbirth, REBIRTH, DataType.BOOLEAN, False)
        self._add(nbirth, "run", DataType.STRING, self.run)
        self.link.publish(self._topic(MessageType.NBIRTH), nbirth.SerializeToString())
        for channel in self.channels:
            dbirth = Payload(timestamp=ts_ms, seq=self._next_seq())
            last = self._last[channel]
            for name, renamed in self.metrics.items():
                self._add(dbirth, renamed, _METRIC_TYPE[name], last.get(name), self.alias(channel, name))
            self.link.publish(self._topic(MessageType.DBIRTH, channel), dbirth.SerializeToString())

    def _ddata(self, channel: str, ts_ms: int, values: dict[str, Any]) -> None:
        """Values by the cyclers' metric names, sent (and remembered for a rebirth) in the described
        names and units."""
        payload = Payload(timestamp=ts_ms, seq=self._next_seq())
        dressed = {}
        for name, value in values.items():
            if name not in self.metrics:
                continue
            leaf = name.rpartition("/")[2]
            dressed[name] = self.names.dress({leaf: value}).popitem()[1] if leaf not in CONTEXT else value
            self._add(payload, None, _METRIC_TYPE[name], dressed[name], self.alias(channel, name))
            payload.metrics[-1].timestamp = ts_ms
        self._last[channel].update(dressed)
        self.link.publish(self._topic(MessageType.DDATA, channel), payload.SerializeToString())

    def sample(self, channel: str, ts_ms: int, s: CyclerSample) -> None:
        self._ddata(
            channel,
            ts_ms,
            {
                "voltage": s.voltage,
                "current": s.current,
                "temperature": s.temperature,
                "step": s.step,
                "capacity": s.capacity,
                "cell_id": s.cell_id,
            },
        )

    def result(self, cell: Cell, ts_ms: int, start_ms: int, end_ms: int) -> None:
        fields = result_fields(cell, start_ms, end_ms)
        names = (
            "charge_capacity",
            "discharge_capacity",
            "first_cycle_efficiency",
            "cathode_roll_id",
            "position_m",
        )
        values = {f"result/{k}": fields[k] for k in names}
        values["result/cell_id"] = cell.cell_id
        self._ddata(cell.channel, ts_ms, values)

    def ocv(self, reading: OcvReading, ts_ms: int) -> None:
        values: dict[str, Any] = {
            "ocv/ocv": reading.ocv,
            "ocv/age_days": reading.age_days,
            "ocv/cell_id": reading.cell.cell_id,
        }
        if reading.k_value is not None:
            values["ocv/k_value"] = reading.k_value
        self._ddata(reading.cell.channel, ts_ms, values)

    def close(self, ts_ms: int) -> None:
        self.link.close(self.link.publish(self.ndeath_topic, self._death(ts_ms)))
