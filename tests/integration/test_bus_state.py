"""The plant bus keeps each machine's last values retained, and puts them back after a broker lost them."""

from __future__ import annotations

import asyncio
import time

import paho.mqtt.client as mqtt
import pytest

from connectors.busout import BusPublisher
from core import bus
from core.localservices import start_mosquitto
from core.sample import Sample
from core.settings import MqttSettings, Settings

pytestmark = pytest.mark.integration
TOPICS = Settings().namespace


def _retained(port: int, within_s: float = 8.0) -> list[Sample]:
    """What a subscriber that comes now receives on the state topics, without anyone publishing."""
    received: list[Sample] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: received.extend(bus.decode(m.payload)) if m.retain else None
    client.connect("127.0.0.1", port)
    client.subscribe(TOPICS("line7").state("+"), qos=1)
    client.loop_start()
    deadline = time.monotonic() + within_s
    while not received and time.monotonic() < deadline:
        time.sleep(0.1)
    client.loop_stop()
    client.disconnect()
    return received


async def test_a_setpoint_sent_once_is_retained_and_survives_a_broker_that_lost_it() -> None:
    broker = start_mosquitto()
    publisher = BusPublisher(MqttSettings(port=broker.port), "bus-state-test", TOPICS)
    try:
        publisher.start()
        setpoint = Sample("line7", "coater1", "pump_flow_setpoint", 79.28, "mL/min", 10**18, 10**18)
        older = Sample("line7", "coater1", "pump_flow", 77.0, "mL/min", 10**18, 10**18)
        newer = Sample("line7", "coater1", "pump_flow", 77.4, "mL/min", 10**18 + 10**9, 10**18 + 10**9)
        await asyncio.sleep(1.0)
        publisher.publish([setpoint, newer, older])  # stream order is not time order
        await asyncio.sleep(1.5)
        state = {s.signal: s.value for s in await asyncio.to_thread(_retained, broker.port)}
        assert state == {"pump_flow_setpoint": 79.28, "pump_flow": 77.4}, "the newest value of each signal"

        broker.kill()  # kill -9: the retained messages since the last autosave are gone
        for saved in broker.workdir.glob("*.db"):
            saved.unlink()
        broker.start()
        assert await asyncio.to_thread(_retained, broker.port, 0.5) == [], "the new broker lost the state"
        await asyncio.sleep(3.0)  # paho reconnects, the next state round republishes every machine
        after = {s.signal: s.value for s in await asyncio.to_thread(_retained, broker.port)}
        assert after == {"pump_flow_setpoint": 79.28, "pump_flow": 77.4}
    finally:
        publisher.stop()
        broker.cleanup()
