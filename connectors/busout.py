"""Republish normalised samples on the plant bus (``<root>/bus/<site>/<area>/<line>/<step>``, QoS 1), and
keep each step's last values retained on ``<root>/state/<site>/<area>/<line>/<step>`` (``core.uns``).

The codec is ``core.bus``, shared with the twin. The bus is the live feed; InfluxDB is the record, so a
bus outage never holds up ingest: paho queues QoS 1 messages while disconnected and sends them after.

Why a retained state beside the stream: OPC UA reports by exception, so a setpoint is read once and then
never again until someone changes it. A twin that subscribes after that moment (started later, or at
the same time and a second slower) would never learn it from the stream. The broker's retained message
is MQTT's own answer to "last known value": every new subscription gets it at once, whatever the start
order and with or without InfluxDB. The state is republished when a machine's values changed, at most
every ``STATE_INTERVAL_S``, and in full after every (re)connect, since a restarted broker may have lost it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt

from connectors.mqtt.client import connect, make_client
from core import bus
from core.sample import Sample
from core.settings import MqttSettings
from core.uns import Namespace

STATE_INTERVAL_S = 1.0

Machine = tuple[str, str]  # (line, machine)


class BusPublisher:
    """``topics`` names a line's namespace (``Settings.namespace``)."""

    def __init__(self, settings: MqttSettings, client_id: str, topics: Callable[[str], Namespace]) -> None:
        self.client: mqtt.Client = make_client(settings, client_id)
        self._topics = topics
        self.client.on_connect = self._on_connect
        self._settings = settings
        #: (line, machine) -> (channel, signal) -> the newest sample, for the retained state
        self._last: dict[Machine, dict[tuple[str | None, str], Sample]] = defaultdict(dict)
        self._changed: set[Machine] = set()
        self._connected_again = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background; call on the asyncio loop, which republishes the retained state."""
        connect(self.client, self._settings, persistent=False)
        self.client.loop_start()
        self._task = asyncio.get_running_loop().create_task(self._states(), name="bus-state")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.publish_states()
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, samples: Sequence[Sample]) -> None:
        """One message per line and machine, samples in their arrival order."""
        groups: dict[Machine, list[Sample]] = defaultdict(list)
        for sample in samples:
            groups[(sample.line, sample.machine)].append(sample)
        for key, group in groups.items():
            line, machine = key
            self.client.publish(self._topics(line).bus(machine), bus.encode(group), qos=1)
            last = self._last[key]
            for sample in group:
                old = last.get((sample.channel, sample.signal))
                if old is None or old.source_time_ns <= sample.source_time_ns:
                    last[(sample.channel, sample.signal)] = sample
            self._changed.add(key)

    def publish_states(self, every_machine: bool = False) -> None:
        """The retained last values of each machine that changed since the last call (or of all)."""
        machines = list(self._last) if every_machine else sorted(self._changed)
        self._changed = set()
        for line, machine in machines:
            state = bus.encode(self._last[(line, machine)].values())
            self.client.publish(self._topics(line).state(machine), state, 1, retain=True)

    async def _states(self) -> None:
        while True:
            await asyncio.sleep(STATE_INTERVAL_S)
            again, self._connected_again = self._connected_again, False
            self.publish_states(every_machine=again)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        """paho's thread: ask the loop to republish every machine's state (a new broker may lack it)."""
        if not reason.is_failure:
            self._connected_again = True
