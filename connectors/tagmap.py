"""The tag map: which OPC UA nodes and MQTT topics become which machine, signal and unit.

A TOML file (``ingest.tag_map``), validated by pydantic like the rest of the settings. Without a file the
built-in map serves the line description: OPC UA machines are discovered from the server's AnalogItems at
connect time (see ``connectors.opcua.discover``) and each formation step's cyclers are read on MQTT
(``builtin``).

OPC UA nodes are named either by NodeId (``ns=2;s=Coater1.PumpFlow``, ``i=2258``) or by browse path from
the Objects folder (``Coater1/Dryer/Zone1/Temperature``; a segment may carry its namespace, ``2:Coater1``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core import linedesc
from core.configfile import load_toml
from core.settings import Section, Settings
from core.units import Conversion, UnitError, conversion

_NODE_ID = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?[isgb]=.+$")


def is_node_id(node: str) -> bool:
    """True for a NodeId string, False for a browse path."""
    return bool(_NODE_ID.match(node))


def _conversion(source: str, target: str) -> Conversion | None:
    """The conversion from the unit a source sends into the one stored; None when they are one unit.
    Raises ``ValueError`` (a validation error naming the field) when there is none."""
    try:
        return conversion(source, target)
    except UnitError as exc:
        raise ValueError(str(exc)) from None


class OpcUaTag(Section):
    """One analog item: its node and the signal and unit it becomes. ``source_unit`` is the unit the server
    sends when it is not ``unit``: values are converted into ``unit`` and stored with both."""

    node: str = Field(min_length=1)
    signal: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    unit: str = Field(min_length=1)
    source_unit: str | None = None
    #: this item's absolute deadband and sampling interval (default: ``[opcua]``'s); never applied to a
    #: machine's ScanCounter or RollId, which must report every change
    deadband_abs: float | None = Field(None, ge=0)
    sampling_interval_ms: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _convertible(self) -> OpcUaTag:
        if self.source_unit is not None:
            _conversion(self.source_unit, self.unit)
        return self

    def conversion(self) -> Conversion | None:
        return None if self.source_unit is None else _conversion(self.source_unit, self.unit)


class OpcUaMachine(Section):
    """The nodes of one machine. ``scan_counter`` numbers its ticks (the samples' ``seq``)."""

    machine: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    scan_counter: str | None = None
    roll_id: str | None = None
    tags: list[OpcUaTag] = Field(default_factory=list)


class MqttSource(Section):
    r"""A topic filter and how its payloads read.

    ``json``: the topic level ``channel_level`` (0-based) names the channel; ``channels``, when listed,
    are the only channels read, each on its own filter, so that several ingest processes can each
    subscribe to their share (``connectors.mqtt.partitions``); payload keys are signals whose
    units are listed in ``units``, keys in ``ignore`` are skipped, any other key is rejected as
    ``unknown_signal``. ``sparkplug``: device IDs are channels and a metric's full name identifies its
    series: it is the signal (``Channel01/Voltage``), unless ``metric_pattern`` (a regular expression
    matched against the whole name) names the signal, and optionally the channel, with the groups
    ``signal`` and ``channel``: ``(?P<channel>Channel\d+)/(?P<signal>.+)`` splits a gateway's
    per-channel metrics of one device. Two metrics of one device that the pattern would put in one series
    are refused (``ambiguous_metric``), never merged. A signal's unit is ``units[signal]`` when listed,
    else the ``engUnit`` property of the metric's birth certificate.
    """

    topic: str = Field(min_length=1)
    machine: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    format: Literal["json", "sparkplug"] = "json"
    channel_level: int | None = Field(None, ge=0)
    channels: list[str] = Field(default_factory=list)
    units: dict[str, str] = Field(default_factory=dict)
    #: signal -> the unit the payload carries, when not ``units[signal]``: values are converted
    source_units: dict[str, str] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list)
    metric_pattern: str | None = None

    @model_validator(mode="after")
    def _convertible(self) -> MqttSource:
        for signal, unit in self.source_units.items():
            if signal not in self.units:
                raise ValueError(f"source_units names {signal!r}, which units does not list")
            _conversion(unit, self.units[signal])
        return self

    @model_validator(mode="after")
    def _channels_fill_their_level(self) -> MqttSource:
        if not self.channels:
            return self
        levels = self.topic.split("/")
        if self.format != "json" or self.channel_level is None or self.channel_level >= len(levels):
            raise ValueError("channels need a json source whose channel_level is a level of its topic")
        if levels[self.channel_level] != "+":
            level = levels[self.channel_level]
            raise ValueError(f"channels need '+' at topic level {self.channel_level}, not {level!r}")
        bad = [c for c in self.channels if not c or any(ch in c for ch in "/+#")]
        if bad:
            raise ValueError(f"a channel is one topic level, without '/', '+' or '#': {bad}")
        twice = sorted({c for c in self.channels if self.channels.count(c) > 1})
        if twice:
            raise ValueError(f"channels listed twice: {', '.join(twice)}")
        return self

    def conversions(self) -> dict[str, Conversion]:
        """Signal -> conversion into its stored unit, for the signals that need one."""
        found = {s: _conversion(unit, self.units[s]) for s, unit in self.source_units.items()}
        return {s: c for s, c in found.items() if c is not None}

    @field_validator("metric_pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            groups = set(re.compile(pattern).groupindex)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if not groups <= {"signal", "channel"}:
            raise ValueError(f"named groups may be 'signal' and 'channel' only, not {sorted(groups)}")
        return pattern

    @field_validator("topic")
    @classmethod
    def _valid_filter(cls, topic: str) -> str:
        levels = topic.split("/")
        if any(("#" in level and level != "#") or ("+" in level and level != "+") for level in levels):
            raise ValueError("wildcards must fill a whole topic level")
        if "#" in levels[:-1]:
            raise ValueError("'#' may only be the last topic level")
        return topic


class TagMap(Section):
    """The whole map. An empty ``opcua`` list means: discover the machines on the server."""

    opcua: list[OpcUaMachine] = Field(default_factory=list)
    mqtt: list[MqttSource] = Field(default_factory=list)


#: what a cycler's result carries beside its values (its formation's start and end)
CYCLER_IGNORED = ["formation_start", "formation_end"]
#: The simulated cyclers' Sparkplug folders (``result/``, ``ocv/``) group metrics; the signal is the rest.
CYCLER_METRICS = r"(?:(?:result|ocv)/)?(?P<signal>[a-z_]+)"


def builtin(settings: Settings) -> TagMap:
    """The map of a described line (docs/address-space.md): OPC UA machines discovered on the server, and
    each ``formation`` step's cyclers on MQTT under the line's namespace (``core.uns``): JSON on
    ``<site>/<area>/<line>/<step>/<channel>/{data,result,ocv}`` and Sparkplug B as edge node ``<step>`` of
    group ``<site>.<area>.<line>``, their signals and units the description's."""
    namespace = settings.namespace()
    sources = []
    for step in linedesc.load(settings.line_description).steps:
        if step.kind != "formation":
            continue
        units = {signal.name: signal.unit for signal in step.signals}
        topic = namespace.step(step.id)
        sources += [
            MqttSource(
                topic=f"{topic}/+/+",
                machine=step.id,
                format="json",
                channel_level=len(topic.split("/")),
                units=units,
                ignore=CYCLER_IGNORED,
            ),
            MqttSource(
                topic=f"spBv1.0/{namespace.sparkplug_group}/+/{step.id}/#",
                machine=step.id,
                format="sparkplug",
                units=units,
                metric_pattern=CYCLER_METRICS,
            ),
        ]
    return TagMap(mqtt=sources)


def load(path: Path | None, settings: Settings | None = None) -> TagMap:
    """Load and validate the tag map (none: ``builtin``); errors name the file, the line where TOML knows
    it, and the field."""
    return builtin(settings or Settings()) if path is None else load_toml(path, TagMap, "tag map")
