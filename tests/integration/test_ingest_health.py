"""``twin ingest``'s /health: 503 degraded with the reason while a source is away, 200 ok once it is back;
/metrics beside it on the same port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from bench.ingest_sources import OpcUaSource
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port
from tests.integration.ingest_support import ingest_settings, wait_for

pytestmark = pytest.mark.integration


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=2) as client:
        return await client.get(url)


async def test_health_is_degraded_while_the_opcua_server_is_away(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    port, metrics = free_port(), free_port()
    source = OpcUaSource(port, machines=1, signals=2)
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "mqtt_enabled": False, "bus_enabled": False, "metrics_port": metrics},
        opcua={"endpoints": [source.endpoint]},
    )
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    base = f"http://127.0.0.1:{metrics}"
    await wait_for(lambda: service.http is not None, what="the HTTP endpoint")
    away = await _get(f"{base}/health")
    assert away.status_code == 503
    assert away.json()["reasons"] == [f"OPC UA {source.endpoint} not connected"]
    await source.start()
    try:
        await wait_for(lambda: service.opcua[0].connected.is_set(), what="session")
        back = await _get(f"{base}/health")
        assert back.status_code == 200 and back.json()["status"] == "ok"
        assert "linetwin_ingest_received_total" in (await _get(f"{base}/metrics")).text
    finally:
        stop.set()
        await task
        await source.stop()
