"""Republish normalised samples on the plant bus (``linetwin/bus/<line>/<machine>``, QoS 1).

The codec is ``core.bus``, shared with the twin. The bus is the live feed; InfluxDB is the record, so a
bus outage never holds up ingest: paho queues QoS 1 messages while disconnected and sends them after.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import paho.mqtt.client as mqtt

from connectors.mqtt.client import connect, make_client
from core import bus
from core.sample import Sample
from core.settings import MqttSettings


class BusPublisher:
    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        self.client: mqtt.Client = make_client(settings, client_id)
        self._settings = settings

    def start(self) -> None:
        connect(self.client, self._settings, persistent=False)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, samples: Sequence[Sample]) -> None:
        """One message per line and machine, samples in their arrival order."""
        groups: dict[tuple[str, str], list[Sample]] = defaultdict(list)
        for sample in samples:
            groups[(sample.line, sample.machine)].append(sample)
        for (line, machine), group in groups.items():
            self.client.publish(bus.topic(line, machine), bus.encode(group), qos=1)
