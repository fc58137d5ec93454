"""The asyncio-driven paho client against real Mosquitto: held bytes are read without new ones arriving."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest

from connectors.mqtt import aioloop
from connectors.mqtt.aioloop import AsyncioNetwork
from connectors.mqtt.client import connect, make_client
from core.localservices import Mosquitto, free_port
from core.settings import MqttSettings

pytestmark = pytest.mark.integration

TOPIC = "test/held/bytes"


async def _backlog(mosquitto: Mosquitto, messages: int) -> tuple[MqttSettings, str]:
    """A persistent session that subscribed and left, with ``messages`` queued for it."""
    settings = MqttSettings(host=mosquitto.host, port=mosquitto.port)
    client_id = f"held-{free_port()}"
    subscribed = asyncio.Event()

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe(TOPIC, qos=1)

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
    infos = [publisher.publish(TOPIC, f"m{n}", qos=1) for n in range(messages)]
    for info in infos:
        info.wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()
    return settings, client_id


async def _drain(
    settings: MqttSettings, client_id: str, messages: int, on_message: Callable[[bytes], None]
) -> None:
    """Connect again and read the backlog on the loop; the keepalive (30 s) is the next thing the broker
    would send, so 5 s is only enough if held bytes are read without new ones."""
    everything = asyncio.Event()
    count = 0

    def handle(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal count
        on_message(message.payload)
        count += 1
        if count == messages:
            everything.set()

    back = make_client(settings, client_id)
    back.on_message = handle
    connect(back, settings, persistent=True)
    network = AsyncioNetwork(back, 1, 2)
    network.start()
    try:
        await asyncio.wait_for(everything.wait(), 5)
    finally:
        await network.stop()


async def test_messages_already_read_from_the_kernel_are_handled_without_waiting_for_more(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog arrives in a few large reads; with one packet per burst, all but the first wait in the
    socket's buffer, where no readiness of the socket will announce them."""
    monkeypatch.setattr(aioloop, "READ_BURST", 1)
    settings, client_id = await _backlog(mosquitto, 50)
    received: list[bytes] = []
    await _drain(settings, client_id, 50, received.append)
    assert received == [f"m{n}".encode() for n in range(50)]


async def test_other_tasks_keep_their_turn_while_a_backlog_is_read(
    mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn of the loop reads a burst or two (the continuation, and the socket's readiness), never
    more: the InfluxDB writes wait for turns of the loop while a backlog drains."""
    monkeypatch.setattr(aioloop, "READ_BURST", 1)
    settings, client_id = await _backlog(mosquitto, 300)
    turns = 0
    per_turn: Counter[int] = Counter()

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_task())
    try:
        await _drain(settings, client_id, 300, lambda _: per_turn.update([turns]))
    finally:
        ticker.cancel()
    assert max(per_turn.values()) <= 2
