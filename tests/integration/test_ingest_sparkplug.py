"""Sparkplug B from the simulator's cyclers, and a rebirth requested after a seq gap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from connectors.mqtt.sparkplug import REBIRTH
from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port
from core.sparkplug import Payload
from plant.runtime import running
from tests.integration.ingest_support import ingest_settings, points, wait_for

pytestmark = pytest.mark.integration


async def test_sparkplug_cyclers_are_ingested_and_a_seq_gap_asks_for_a_rebirth(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    settings = ingest_settings(tmp_path, mosquitto, influxd, ingest={"bus_enabled": False})
    plant_settings = settings.model_copy(
        update={
            "site": f"site{free_port()}",
            "plant": settings.plant.model_copy(
                update={
                    "opcua_endpoint": f"opc.tcp://127.0.0.1:{free_port()}/linetwin",
                    "speed": 20.0,
                    "payload": "sparkplug",
                    "cycler_channels": 2,
                    "ground_truth_file": tmp_path / "truth.jsonl",
                }
            ),
        }
    )
    commands: list[str] = []
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    spy.on_message = lambda c, u, m: commands.extend(x.name for x in Payload.FromString(m.payload).metrics)
    spy.connect(mosquitto.host, mosquitto.port)
    spy.subscribe("spBv1.0/linetwin/NCMD/+", qos=1)
    spy.loop_start()
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")
    database = settings.influx.database
    async with running(plant_settings):
        await wait_for(
            lambda: len(points(influxd, database, "WHERE machine = 'cycler1'")) >= 50, what="samples"
        )
        assert service.mqtt is not None
        node = service.mqtt._hosts[id(service.mqtt.sources[1])].nodes[("linetwin", "cycler1")]
        assert node.seq is not None
        node.seq = (node.seq + 100) % 256
        await wait_for(lambda: REBIRTH in commands, what="rebirth request")
        await wait_for(lambda: service.accounting.total("seq_gaps") > 0, what="gap counted")
    spy.loop_stop()
    rows = points(influxd, database, "WHERE machine = 'cycler1'")
    assert "ch01" in {row["channel"] for row in rows}
    units = {row["signal"]: row["unit"] for row in rows}
    assert units["voltage"] == "V" and units["current"] == "A" and units["temperature"] == "Cel"
    assert all(row["cell_id"] for row in rows if row["signal"] == "voltage")
    assert service.accounting.total("rejected") == 0
    stop.set()
    await task
