"""Where connectors hand over samples: count them, queue them for InfluxDB, republish them on the bus.

Runs on the asyncio loop; connectors on other threads (paho's loop thread) call ``submit_threadsafe``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence

from connectors.accounting import Accounting
from connectors.busout import BusPublisher
from connectors.influx.writer import Ack, InfluxWriter
from core.sample import Sample


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

    def submit(self, connector: str, samples: Sequence[Sample], ack: Ack | None = None) -> None:
        """Take samples of one connector; ``ack`` runs once they are durable (database or spool)."""
        per_source = Counter(sample.source for sample in samples)
        for source, n in per_source.items():
            self.accounting.count("received", connector, source, n)
        self.writer.add(samples, connector, ack)
        if self.bus is not None and samples:
            self.bus.publish(samples)

    def submit_threadsafe(self, connector: str, samples: Sequence[Sample], ack: Ack | None = None) -> None:
        self.loop.call_soon_threadsafe(self.submit, connector, samples, ack)
