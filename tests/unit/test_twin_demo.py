"""``twin demo``'s fallbacks: the embedded MQTT broker carries the plant bus; children get the demo's
settings through the environment on top of the user's."""

from __future__ import annotations

import asyncio

import paho.mqtt.client as mqtt

from cli.demo import _child_env, embedded_broker
from core import bus
from core.localservices import free_port
from core.sample import Sample
from core.settings import Settings

TOPICS = Settings().namespace()


async def test_the_embedded_broker_carries_bus_messages_when_no_mosquitto_is_installed() -> None:
    port = free_port()
    received: list[bytes] = []
    async with embedded_broker(port):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = lambda _c, _u, message: received.append(bytes(message.payload))
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe(TOPICS.bus("+"), 1)
        await asyncio.sleep(0.3)
        sample = Sample("line1", "coater1", "pump_flow", 79.3, "mL/min", 1, 1)
        client.publish(TOPICS.bus("coater1"), bus.encode([sample]), qos=1)
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.05)
        client.loop_stop()
        client.disconnect()
    assert bus.decode(received[0]) == [sample]


def test_children_get_the_demo_settings_as_environment_variables() -> None:
    env = _child_env({"mqtt": {"port": 1884}, "opcua": {"endpoints": ["opc.tcp://h:1/x"]}}, influx=False)
    assert env["LINETWIN_MQTT__PORT"] == "1884"
    assert env["LINETWIN_OPCUA__ENDPOINTS"] == '["opc.tcp://h:1/x"]'
    assert env["LINETWIN_INFLUX__URL"] == "http://127.0.0.1:9"
