"""Each ingest process subscribes to its own share of the MQTT topics where the tag map allows it."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from connectors.mqtt.partitions import subscriptions
from connectors.tagmap import MqttSource

CHANNELS = [f"ch{c:02d}" for c in range(1, 17)]
LISTED = MqttSource(
    topic="site/area/line/cycler1/+/+", machine="cycler1", channel_level=4, channels=CHANNELS, units={}
)
WILDCARD = MqttSource(topic="site/area/line/cycler1/+/+", machine="cycler1", channel_level=4, units={})
NODE = MqttSource(topic="spBv1.0/site.area.line/+/cycler1/#", machine="cycler1", format="sparkplug")
ANY_NODE = MqttSource(topic="spBv1.0/site.area.line/+/+/#", machine="cycler1", format="sparkplug")


def _topics(source: MqttSource, partition: int, partitions: int) -> list[str]:
    return [s.topic for s in subscriptions([source], partition, partitions)]


def test_listed_channels_are_split_between_partitions_and_each_is_read_once() -> None:
    shares = [_topics(LISTED, p, 2) for p in (0, 1)]
    assert shares[0] and shares[1] and not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == sorted(f"site/area/line/cycler1/{c}/+" for c in CHANNELS)
    assert not any(s.shared for p in (0, 1) for s in subscriptions([LISTED], p, 2))


def test_listed_channels_are_what_one_process_reads_too() -> None:
    assert sorted(_topics(LISTED, 0, 1)) == sorted(f"site/area/line/cycler1/{c}/+" for c in CHANNELS)


def test_a_named_sparkplug_node_goes_to_one_partition_whole() -> None:
    shares = [_topics(NODE, p, 3) for p in (0, 1, 2)]
    assert sorted(len(share) for share in shares) == [0, 0, 1]
    assert [t for share in shares for t in share] == [NODE.topic]


@pytest.mark.parametrize("source", [WILDCARD, ANY_NODE], ids=["json-channel-wildcard", "sparkplug-any-node"])
def test_a_filter_the_broker_cannot_split_goes_to_every_partition_as_shared(source: MqttSource) -> None:
    for partition in (0, 1):
        (found,) = subscriptions([source], partition, 2)
        assert found.topic == source.topic and found.shared


def test_one_partition_reads_a_wildcard_whole_and_unshared() -> None:
    (found,) = subscriptions([WILDCARD], 0, 1)
    assert found.topic == WILDCARD.topic and not found.shared


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"format": "sparkplug"}, "json source"),
        ({"channel_level": 3}, "'+' at topic level 3"),
        ({"channel_level": 9}, "level of its topic"),
        ({"channels": ["ch01", "ch01"]}, "listed twice: ch01"),
        ({"channels": ["ch/01"]}, "one topic level"),
    ],
)
def test_channels_that_cannot_be_subscribed_are_refused_with_a_reason(
    fields: dict[str, object], message: str
) -> None:
    data = {
        "topic": "site/area/line/cycler1/+/+",
        "machine": "cycler1",
        "channel_level": 4,
        "channels": CHANNELS,
    }
    with pytest.raises(ValidationError, match=re.escape(message)):
        MqttSource.model_validate({**data, **fields})
