"""Where connectors hand over samples: count them, queue them for InfluxDB, republish them on the bus.

Runs on the asyncio loop. Connectors on other threads (paho's loop thread) count their hand-overs,
republish them on the bus and put them in an inbox that the writer empties before each flush; they wake
the loop only when a batch's worth of points waits. A self-pipe write and a loop turn per message cost as
much as parsing the message, and the points would wait for the flush anyway. On the loop (OPC UA) the bus
republish is batched: one publish per loop turn and machine, not per notification.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

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


@dataclass(slots=True)
class _Inbox:
    """Filled by one connector thread, emptied on the loop; each counter has one writer, so no lock."""

    items: deque[Handover] = field(default_factory=deque)
    put: int = 0
    taken: int = 0
    woken: bool = False


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
        self._inbox = _Inbox()
        self._to_bus: list[Sample] = []
        writer.collect = self._drain

    def hand_over(self, handover: Handover) -> None:
        """Take one hand-over; its ``ack`` runs once its points are durable (database or spool)."""
        self._count(handover)
        self._write(handover)
        if self.bus is not None and handover.samples:
            if not self._to_bus:
                self.loop.call_soon(self._publish)
            self._to_bus.extend(handover.samples)

    def hand_over_threadsafe(self, handover: Handover) -> None:
        """Take one hand-over from another thread; it reaches the writer at its next flush."""
        self._count(handover)
        if self.bus is not None and handover.samples:
            self.bus.publish(handover.samples)
        inbox = self._inbox
        inbox.items.append(handover)
        inbox.put += len(handover.lines)
        if inbox.put - inbox.taken >= self.writer.settings.batch_size and not inbox.woken:
            inbox.woken = True
            self.loop.call_soon_threadsafe(self._drain)

    def submit(self, connector: str, samples: Sequence[Sample], ack: Ack | None = None) -> None:
        """Take samples of one connector (any sources); ``ack`` runs once all of them are durable."""
        for handover in self.handovers(connector, samples, ack):
            self.hand_over(handover)

    def submit_threadsafe(self, connector: str, samples: Sequence[Sample], ack: Ack | None = None) -> None:
        for handover in self.handovers(connector, samples, ack):
            self.hand_over_threadsafe(handover)

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

    def _drain(self) -> None:
        inbox = self._inbox
        inbox.woken = False
        while inbox.items:
            handover = inbox.items.popleft()
            inbox.taken += len(handover.lines)
            self._write(handover)

    def _count(self, handover: Handover) -> None:
        if handover.lines:
            self.accounting.count("received", handover.connector, handover.source, len(handover.lines))

    def _write(self, handover: Handover) -> None:
        self.writer.add(handover.lines, (handover.connector, handover.source), handover.times, handover.ack)

    def _publish(self) -> None:
        assert self.bus is not None
        samples, self._to_bus = self._to_bus, []
        self.bus.publish(samples)
