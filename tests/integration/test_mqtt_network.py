"""The asyncio-driven paho client against real Mosquitto: held bytes are read without new ones arriving."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt
import pytest

from connectors.mqtt import aioloop
from connectors.mqtt.aioloop import AsyncioNetwork
from connectors.mqtt.client import connect, make_client
from core.localservices import Mosquitto, free_port
from core.settings import MqttSettings

pytestmark = pytest.mark.integration

TOPIC = "test/held/bytes"


async def test_messages_already_read_from_the_kernel_are_handled_without_waiting_for_more(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog arrives in a few large reads; with one packet per burst, all but the first wait in the
    socket's buffer, where no readiness of the socket will announce them."""
    monkeypatch.setattr(aioloop, "READ_BURST", 1)
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    client_id = f"held-{free_port()}"
    received: list[bytes] = []
    subscribed = asyncio.Event()
    everything = asyncio.Event()

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe(TOPIC, qos=1)

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.payload)
        if len(received) == 50:
            everything.set()

    away = make_client(settings, client_id)
    away.on_connect = on_connect
    away.on_subscribe = lambda *_: subscribed.set()
    connect(away, settings, persistent=True)
    network = AsyncioNetwork(away, 1, 2)
    network.start()
    await asyncio.wait_for(subscribed.wait(), 10)
    await network.stop()

    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    infos = [publisher.publish(TOPIC, f"m{n}", qos=1) for n in range(50)]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()

    back = make_client(settings, client_id)
    back.on_message = on_message
    connect(back, settings, persistent=True)
    network = AsyncioNetwork(back, 1, 2)
    network.start()
    try:
        await asyncio.wait_for(everything.wait(), 5)  # keepalive (30 s) is the next thing the broker sends
    finally:
        await network.stop()
    assert received == [f"m{n}".encode() for n in range(50)]
