"""``twin ingest`` as one asyncio program: sources → pipeline → InfluxDB writer and plant bus.

OPC UA endpoints are read by partition 0 only (one session per endpoint is enough and a second would
write every point twice); MQTT sources are split between partitions (see ``connectors.mqtt.connector``).
On stop, MQTT intake ends first, then the writer flushes (to the spool if need be) and only then are the
acknowledgements sent and the session closed: every acknowledged message is durable, and the broker need
not deliver again what was written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any
from wsgiref.simple_server import WSGIServer

from connectors.accounting import Accounting
from connectors.busout import BusPublisher
from connectors.mqtt.connector import MqttConnector
from connectors.opcua.connector import OpcUaConnector
from connectors.pipeline import Pipeline
from connectors.tagmap import TagMap
from connectors.tagmap import load as load_tag_map
from core import health
from core.influx.lineprotocol import connector_point
from core.influx.spool import Spool
from core.influx.writer import InfluxWriter
from core.settings import Settings

log = logging.getLogger(__name__)


class IngestService:
    def __init__(self, settings: Settings, tag_map: TagMap | None = None) -> None:
        self.settings = settings
        self.tag_map = tag_map if tag_map is not None else load_tag_map(settings.ingest.tag_map, settings)
        self.accounting = Accounting()
        self.writer: InfluxWriter | None = None
        self.opcua: list[OpcUaConnector] = []
        self.mqtt: MqttConnector | None = None
        self.started = asyncio.Event()
        self.http: WSGIServer | None = None

    def health(self) -> tuple[str, dict[str, Any]]:
        """``ok``, or ``degraded`` with the reasons: a source not connected, points spooled."""
        reasons = [f"OPC UA {c.endpoint} not connected" for c in self.opcua if not c.connected.is_set()]
        if self.mqtt is not None and not self.mqtt.subscribed.is_set():
            reasons.append("MQTT broker not connected")
        spooled = len(self.writer.spool) if self.writer is not None else 0
        if spooled:
            reasons.append(f"InfluxDB not taking points: {spooled} batches spooled")
        details = {
            "reasons": reasons,
            "influx_spooled_batches": spooled,
            "sources": len(self.opcua) + bool(self.mqtt),
        }
        return ("degraded" if reasons else "ok"), details

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); a connector's fatal error (e.g. a refusal) ends the run."""
        settings, ingest = self.settings, self.settings.ingest
        if ingest.metrics_port is not None:
            self.http = health.serve(ingest.metrics_port, self.accounting.registry, self.health)
        self.writer = writer = InfluxWriter(settings.influx, self.accounting)
        bus = None
        if ingest.bus_enabled:
            bus = BusPublisher(
                settings.mqtt,
                f"{settings.mqtt.client_id_prefix}-bus-{settings.line}-{ingest.partition}",
                settings.namespace,
            )
            bus.start()
        journal = Spool(settings.influx.spool_dir / "journal")
        pipeline = Pipeline(writer, self.accounting, bus, journal=journal)
        if recovered := pipeline.recover():
            log.warning(
                "recovered points a stopped ingest had received but not written", extra={"points": recovered}
            )
        jobs: list[Coroutine[Any, Any, None]] = [writer.run(), self._report()]
        if ingest.opcua_enabled and ingest.partition == 0:
            self.opcua = [
                OpcUaConnector(endpoint, settings, self.tag_map.opcua, pipeline, self.accounting)
                for endpoint in settings.opcua.endpoints
            ]
            jobs += [connector.run() for connector in self.opcua]
        if ingest.mqtt_enabled and self.tag_map.mqtt:
            self.mqtt = MqttConnector(settings, self.tag_map, pipeline, self.accounting)
            jobs.append(self.mqtt.run())
        tasks = [asyncio.create_task(job) for job in jobs]
        stopper = asyncio.create_task((stop or asyncio.Event()).wait())
        self.started.set()
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    task.result()
        finally:
            if self.mqtt is not None:
                self.mqtt.pause()
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.wait(tasks, timeout=5)
            self._write_counters()
            await writer.close()
            if self.mqtt is not None:
                await self.mqtt.stop()
            if bus is not None:
                bus.stop()
            if self.http is not None:
                await asyncio.to_thread(self.http.shutdown)
                self.http.server_close()

    async def _report(self) -> None:
        """Write the counters to the ``connector`` measurement every ``accounting_interval_s``."""
        while True:
            await asyncio.sleep(self.settings.ingest.accounting_interval_s)
            self._write_counters()

    def _write_counters(self) -> None:
        if self.writer is None:
            return
        now = time.time_ns()
        fields: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        lines = []
        for counter in self.accounting.values():
            if counter.name == "rejected":
                lines.append(
                    connector_point(
                        counter.connector, counter.source, {"rejected": counter.value}, now, counter.reason
                    )
                )
            else:
                fields[(counter.connector, counter.source)][counter.name] = counter.value
        lines += [connector_point(c, s, f, now) for (c, s), f in fields.items()]
        lines.append(connector_point("influx", "spool", {"spool_depth": len(self.writer.spool)}, now))
        self.writer.add(lines)
