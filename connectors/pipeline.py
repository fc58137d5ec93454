"""Where connectors hand over samples: count them, queue them for InfluxDB, republish them on the bus.

Runs on the asyncio loop, as both connectors do (asyncua, and paho through ``connectors.mqtt.aioloop``).
Per loop turn, not per message or notification: one bus publish per machine, and one ``received``
increment per source (a labelled Prometheus increment takes a lock and costs as much as the rest of a
sample's hand-over). The turn's counts land before the writer's next flush, so ``received`` never lags
``written``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.accounting import Accounting
from connectors.busout import BusPublisher
from core.influx.lineprotocol import process_points
from core.influx.writer import Ack, InfluxWriter
from core.sample import Sample


@dataclass(slots=True)
class Handover:
    """One source's points from one message or notification, in line protocol with their source times."""

    connector: str
    source: str
    lines: list[str]
    times: list[int]
    #: The same points as Samples for the plant bus; made only when there is a bus (``Pipeline.bus``).
    samples: Sequence[Sample] = ()
    ack: Ack | None = None


class Pipeline:
    def __init__(
        self,
        writer: InfluxWriter,
        accounting: Accounting,
        bus: BusPublisher | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.writer = writer
        self.accounting = accounting
        self.bus = bus
        self.loop = loop or asyncio.get_running_loop()
        self._to_bus: list[Sample] = []
        self._received: dict[tuple[str, str], int] = {}

    def hand_over(self, handover: Handover) -> None:
        """Take one hand-over; its ``ack`` runs once its points are durable (database or spool)."""
        lines, key = handover.lines, (handover.connector, handover.source)
        if lines:
            received = self._received
            if not received:
                self.loop.call_soon(self._count_received)
            received[key] = received.get(key, 0) + len(lines)
        self.writer.add(lines, key, handover.times, handover.ack)
        if self.bus is not None and handover.samples:
            if not self._to_bus:
                self.loop.call_soon(self._publish)
            self._to_bus.extend(handover.samples)

    def submit(self, connector: str, samples: Sequence[Sample], ack: Ack | None = None) -> None:
        """Take samples of one connector (any sources); ``ack`` runs once all of them are durable."""
        for handover in self.handovers(connector, samples, ack):
            self.hand_over(handover)

    def handovers(self, connector: str, samples: Sequence[Sample], ack: Ack | None) -> list[Handover]:
        """Samples grouped by source, the ack on the last group (batches are delivered in order)."""
        by_source: dict[str, list[Sample]] = {}
        for sample in samples:
            by_source.setdefault(sample.source, []).append(sample)
        handovers = [
            Handover(
                connector,
                source,
                process_points(group),
                [s.source_time_ns for s in group],
                group if self.bus is not None else (),
            )
            for source, group in by_source.items()
        ]
        if handovers:
            handovers[-1].ack = ack
        elif ack is not None:
            handovers.append(Handover(connector, "", [], [], (), ack))
        return handovers

    def _count_received(self) -> None:
        received, self._received = self._received, {}
        for (connector, source), count in received.items():
            self.accounting.count("received", connector, source, count)

    def _publish(self) -> None:
        assert self.bus is not None
        samples, self._to_bus = self._to_bus, []
        self.bus.publish(samples)
