"""Where connectors hand over samples: count them, queue them for InfluxDB, republish them on the bus.

Runs on the asyncio loop, as both connectors do (asyncua, and paho through ``connectors.mqtt.aioloop``).
Per loop turn, not per message or notification: one bus publish per machine, and one ``received``
increment per source (a labelled Prometheus increment takes a lock and costs as much as the rest of a
sample's hand-over). The turn's counts land before the writer's next flush, so ``received`` never lags
``written``.

Sources that cannot redeliver (OPC UA: a subscription's notifications are gone once received) are
**journalled**: their points are appended to a journal (the spool's fsynced segments, in
``<spool_dir>/journal``) before they count as received, and the journal entry is dropped once the
writer has them durable (database or spool). After a kill -9, ``recover`` moves what the journal still
holds into the spool, which replays it; a point written twice overwrites itself (same series and time).
MQTT needs none: the broker redelivers what was not acknowledged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from connectors.accounting import Accounting
from connectors.busout import BusPublisher
from core.influx.lineprotocol import process_points
from core.influx.spool import Spool
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
        journal: Spool | None = None,
    ) -> None:
        self.writer = writer
        self.accounting = accounting
        self.bus = bus
        self.journal = journal
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

    def submit(
        self, connector: str, samples: Sequence[Sample], ack: Ack | None = None, journalled: bool = False
    ) -> None:
        """Take samples of one connector (any sources); ``ack`` runs once all of them are durable.
        ``journalled``: on disk in the journal before they count as received (see module)."""
        handovers = self.handovers(connector, samples, ack)
        journal = self.journal
        if journalled and journal is not None and handovers:
            counts: Counter[tuple[str, str]] = Counter()
            for h in handovers:
                counts[(h.connector, h.source)] += len(h.lines)
            journal.append(("\n".join(line for h in handovers for line in h.lines) + "\n").encode(), counts)
            handovers[-1].ack = _then(handovers[-1].ack, lambda: _drop_oldest(journal))
        for handover in handovers:
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

    def recover(self) -> int:
        """Move what a killed process left in the journal into the spool (replayed from there); returns
        how many points."""
        journal, moved = self.journal, 0
        while journal is not None and (segment := journal.oldest()) is not None:
            self.writer.spool.append(segment.body, segment.counts)
            moved += sum(segment.counts.values())
            journal.remove(segment)
        return moved

    def _count_received(self) -> None:
        received, self._received = self._received, {}
        for (connector, source), count in received.items():
            self.accounting.count("received", connector, source, count)

    def _publish(self) -> None:
        assert self.bus is not None
        samples, self._to_bus = self._to_bus, []
        self.bus.publish(samples)


def _drop_oldest(journal: Spool) -> None:
    """Acks come in delivery order, so the entry now durable elsewhere is the journal's oldest."""
    segment = journal.oldest()
    if segment is not None:
        journal.remove(segment)


def _then(first: Ack | None, then: Ack) -> Ack:
    def both() -> None:
        if first is not None:
            first()
        then()

    return both
