"""The MQTT client's helpers: its buffered socket, and which refusals end ingest."""

from __future__ import annotations

import socket

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from connectors.mqtt.bufferedsocket import BufferedSocket
from connectors.mqtt.client import connack_refusal


def test_a_buffered_socket_takes_what_the_kernel_holds_in_one_read_and_serves_small_reads_from_it() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.setblocking(False)
        buffered = BufferedSocket(left)
        with pytest.raises(BlockingIOError):
            buffered.recv(1)  # nothing there: paho's "try again", as from the socket itself
        assert buffered.pending() == 0
        right.send(b"\x30\x05hello\x30\x02ok")
        assert buffered.recv(1) == b"\x30"
        assert buffered.pending() == 10  # the rest came with the first read
        right.send(b"\x30\x00")  # still in the kernel: not counted, not read until asked for
        assert buffered.recv(1) == b"\x05"
        assert buffered.recv(5) == b"hello"
        assert buffered.recv(8) == b"\x30\x02ok"  # a short read, as recv may return
        assert buffered.pending() == 0
        assert buffered.recv(2) == b"\x30\x00"
        right.close()
        assert buffered.recv(1) == b""  # the peer closed: paho's connection lost


def test_a_buffered_socket_is_the_socket_for_everything_but_reads() -> None:
    left, right = socket.socketpair()
    with left, right:
        buffered = BufferedSocket(left)
        assert buffered.fileno() == left.fileno()
        assert buffered.send(b"ping") == 4
        assert right.recv(4) == b"ping"
        assert buffered.getsockname() == left.getsockname()
        buffered.close()
        assert left.fileno() == -1


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
