"""Which topic filters one ingest process subscribes to, so that each of N processes receives its share.

A broker routes by topic filter, so a partition's share has to be a set of filters over the ISA-95 topic
levels. A source is split at the unit whose order its sequence checks rely on: a JSON source at its
channel level when the tag map lists its channels (one filter per channel), a JSON source without
channels as a whole, a Sparkplug source at its edge node when the filter names one. A filter with a
wildcard where that unit sits cannot be split by the broker: every process subscribes to it and keeps
only its own sources' messages (``Subscription.shared``), and the connector warns of it.

MQTT v5 shared subscriptions are not used: Mosquitto hands a shared subscription's messages out round
robin, so one channel's messages would be spread over processes and its sequence checks broken.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from connectors.tagmap import MqttSource


def partition_of(source: str, partitions: int) -> int:
    """The partition a source belongs to; stable across processes and restarts (unlike ``hash``)."""
    return zlib.crc32(source.encode()) % partitions


def json_source(machine: str, channel: str | None) -> str:
    """A JSON source's name: its machine, and its channel if the topic names one."""
    return f"{machine}/{channel}" if channel else machine


def sparkplug_source(levels: list[str]) -> str:
    """A Sparkplug source's name, from a topic's (or filter's) levels: group and edge node."""
    return "/".join(levels[1:2] + levels[3:4])


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    source: MqttSource
    #: the filter also carries other partitions' messages, which this process acknowledges and skips
    shared: bool


def subscriptions(sources: list[MqttSource], partition: int, partitions: int) -> list[Subscription]:
    """The filters partition ``partition`` of ``partitions`` subscribes to, in the tag map's order.

    A source whose channels are listed is read on those channels only, with one partition or many, so
    that what is read never depends on how many processes read it."""
    found: list[Subscription] = []
    for source in sources:
        levels = source.topic.split("/")
        if source.channels:
            at = source.channel_level
            assert at is not None  # the tag map's validator ensures it
            for channel in source.channels:
                mine = partition_of(json_source(source.machine, channel), partitions) == partition
                if partitions == 1 or mine:
                    topic = "/".join([*levels[:at], channel, *levels[at + 1 :]])
                    found.append(Subscription(topic, source, shared=False))
        elif partitions == 1:
            found.append(Subscription(source.topic, source, shared=False))
        elif source.format == "sparkplug" and _named(levels, 1, 3):
            if partition_of(sparkplug_source(levels), partitions) == partition:
                found.append(Subscription(source.topic, source, shared=False))
        elif source.format == "json" and source.channel_level is None:
            if partition_of(json_source(source.machine, None), partitions) == partition:
                found.append(Subscription(source.topic, source, shared=False))
        else:
            found.append(Subscription(source.topic, source, shared=True))
    return found


def _named(levels: list[str], *positions: int) -> bool:
    """Whether the filter names these levels, with no wildcard on them ('#' ends a filter)."""
    return len(levels) > max(positions) and not any(levels[p] in ("+", "#") for p in positions)
