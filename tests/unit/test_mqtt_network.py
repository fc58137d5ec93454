"""The MQTT client's loop helpers: when to read on, and which refusals end ingest."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from connectors.mqtt.aioloop import bytes_waiting
from connectors.mqtt.client import connack_refusal


def test_bytes_waiting_tells_whether_a_read_would_find_data_without_reading_it() -> None:
    left, right = socket.socketpair()
    with left, right:
        waiting = bytes_waiting(left)
        assert not waiting()
        right.send(b"\x30\x00")
        assert waiting()
        assert waiting()  # nothing was consumed
        assert left.recv(2) == b"\x30\x00"
        assert not waiting()


def _client() -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect_async("broker.example", 8883)
    return client


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("Bad user name or password", "check mqtt.username and mqtt.password"),
        ("Not authorized", "check mqtt.username and mqtt.password, and the broker's access rules"),
        ("Client identifier not valid", "check mqtt.client_id_prefix"),
        ("Banned", "banned"),
    ],
)
def test_a_refusal_no_retry_can_cure_ends_ingest_with_the_broker_and_a_hint(name: str, hint: str) -> None:
    refused = connack_refusal(_client(), ReasonCode(PacketTypes.CONNACK, name))
    assert refused is not None
    assert str(refused).startswith(f"MQTT broker broker.example:8883 refused the connection: {name}; ")
    assert hint in str(refused)


@pytest.mark.parametrize("name", ["Server busy", "Server unavailable", "Quota exceeded"])
def test_a_broker_that_is_busy_or_away_is_retried(name: str) -> None:
    assert connack_refusal(_client(), ReasonCode(PacketTypes.CONNACK, name)) is None
