"""Against the simulator (``plant.runtime``), real Mosquitto and influxd: every sample exactly once.

The plant runs at speed for a fixed stretch of plant time; the cyclers' per-channel ``seq`` and the
machines' ``ScanCounter`` prove that each published value is in InfluxDB once, with the units of
docs/address-space.md and at its source (plant) timestamp.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto, free_port
from plant.runtime import running
from tests.integration.ingest_support import ingest_settings, points, wait_for

pytestmark = pytest.mark.integration

UNITS = {
    ("coater1", "pump_flow"): "mL/min",
    ("coater1", "dry_loading"): "mg/cm2",
    ("coater1", "dryer_zone2_temperature"): "Cel",
    ("calender1", "line_load"): "N/mm",
    ("calender1", "porosity"): "%",
    ("cycler1", "voltage"): "V",
    ("cycler1", "current"): "A",
}


TICKS = 100


def _last_ticks(service: IngestService) -> list[int]:
    """The newest ScanCounter the connector has seen per machine."""
    states = service.opcua[0]._states.values() if service.opcua else []
    return [state.last_counter for state in states if state.last_counter is not None]


async def test_every_simulator_sample_is_in_influxdb_exactly_once(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/linetwin"
    site = f"site{free_port()}"
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "bus_enabled": False},
        opcua={"endpoints": [endpoint], "reconnect_min_s": 0.1, "reconnect_max_s": 0.2},
    )
    settings = settings.model_copy(update={"site": site})  # its own topics on the shared broker
    plant_settings = settings.model_copy(
        update={
            "plant": settings.plant.model_copy(
                update={
                    "opcua_endpoint": endpoint,
                    "speed": 20.0,
                    "cycler_channels": 2,
                    "ground_truth_file": tmp_path / "truth.jsonl",
                }
            ),
        }
    )
    published: dict[str, set[int]] = {}
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    spy.on_message = lambda c, u, m: published.setdefault(m.topic.split("/")[4], set()).add(
        json.loads(m.payload)["seq"]
    )
    spy.connect(mosquitto.host, mosquitto.port)
    spy.subscribe(f"{site}/+/+/cycler1/+/+", qos=1)
    spy.loop_start()

    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")
    async with running(plant_settings):
        await wait_for(lambda: service.opcua[0].connected.is_set(), what="OPC UA session")
        await wait_for(
            lambda: len(_last_ticks(service)) == 2 and min(_last_ticks(service)) >= TICKS, what="ticks"
        )
    spy.loop_stop()
    database = settings.influx.database
    expected_cycler = sum(len(s) for s in published.values())
    await wait_for(
        lambda: (
            len({(r["channel"], r["seq"]) for r in points(influxd, database, "WHERE machine = 'cycler1'")})
            >= expected_cycler
        ),
        what="every cycler message",
    )
    rows = points(influxd, database)
    cycler: dict[str, set[int]] = {}
    ticks: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        if row["machine"] == "cycler1":
            cycler.setdefault(row["channel"], set()).add(row["seq"])
        elif row["seq"] is not None:
            ticks.setdefault((row["machine"], row["signal"]), []).append(row["seq"])
        if (row["machine"], row["signal"]) in UNITS:
            assert row["unit"] == UNITS[(row["machine"], row["signal"])]
    assert cycler == published
    for channel, seqs in cycler.items():
        assert seqs == set(range(max(seqs) + 1)), f"{channel}: gap-free from 0"
    assert ticks, "OPC UA values arrived"
    for key, seqs in ticks.items():
        assert len(seqs) == len(set(seqs)), f"{key}: a tick twice"
        assert sorted(seqs) == list(range(min(seqs), max(seqs) + 1)), f"{key}: a tick missing"
        assert max(seqs) >= TICKS, f"{key}: up to the last tick seen"
    assert service.accounting.total("seq_gaps") == 0
    assert service.accounting.total("rejected") == 0
    stop.set()
    await task
