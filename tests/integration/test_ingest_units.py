"""A vendor's units reach InfluxDB converted into the tag map's, with the unit they were sent in beside."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from bench.ingest_sources import OpcUaSource
from connectors.service import IngestService
from connectors.tagmap import load
from core.localservices import Influxd, Mosquitto, free_port
from tests.integration.ingest_support import ingest_settings, points, wait_for

pytestmark = pytest.mark.integration

TAGS = """
[[opcua]]
machine = "coater9"
scan_counter = "{ns}:Machine1/{ns}:ScanCounter"

[[opcua.tags]]
node = "{ns}:Machine1/{ns}:DryLoading"   # the bench server sends mg/cm², the line stores g/m²
signal = "coat_weight"
unit = "g/m2"
source_unit = "mg/cm²"

[[opcua.tags]]
node = "{ns}:Machine1/{ns}:PumpFlow"
signal = "pump_flow"
unit = "mL/min"

[[mqtt]]
topic = "{site}/formation/line1/cycler9/+/data"
machine = "cycler9"
channel_level = 4
units = {{ PumpFlowRate = "mL/min", WetFilmThickness = "um" }}
source_units = {{ PumpFlowRate = "cm3/s" }}
"""


async def test_vendor_units_are_converted_and_stored_with_the_unit_they_came_in(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    source = OpcUaSource(free_port(), machines=1, signals=3)
    await source.start()
    assert source.server is not None
    ns = await source.server.get_namespace_index("urn:linetwin:bench")
    site = f"site{free_port()}"
    path = tmp_path / "tags.toml"
    path.write_text(TAGS.format(ns=ns, site=site))
    settings = ingest_settings(
        tmp_path,
        mosquitto,
        influxd,
        ingest={"opcua_enabled": True, "bus_enabled": False},
        opcua={"endpoints": [source.endpoint]},
    )
    service = IngestService(settings, load(path))
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: bool(service.opcua) and service.opcua[0].connected.is_set(), what="OPC UA session")
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="MQTT")
    for _ in range(3):
        await source.tick()
        await asyncio.sleep(0.2)
    cycler = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    cycler.connect(mosquitto.host, mosquitto.port)
    record = {"seq": 0, "run": "r", "ts": time.time_ns(), "PumpFlowRate": 1.5, "WetFilmThickness": 180.0}
    cycler.publish(f"{site}/formation/line1/cycler9/ch01/data", json.dumps(record), qos=1).wait_for_publish(5)
    cycler.disconnect()
    database = settings.influx.database
    await wait_for(lambda: len(points(influxd, database, "WHERE signal = 'coat_weight'")) >= 3)
    await wait_for(lambda: len(points(influxd, database, "WHERE machine = 'cycler9'")) == 2)
    stop.set()
    await task
    await source.stop()

    weights = points(influxd, database, "WHERE signal = 'coat_weight' AND seq > 0")
    assert {(r["unit"], r["source_unit"]) for r in weights} == {("g/m2", "mg/cm²")}
    # the bench server sends ticks + 0.2 for its third signal: 10× that in g/m²
    assert weights and all(r["value"] == pytest.approx(10 * (r["seq"] + 0.2)) for r in weights)
    flow = points(influxd, database, "WHERE signal = 'pump_flow'")
    assert {(r["unit"], r["source_unit"]) for r in flow} == {("mL/min", None)}, (
        "no conversion, no source unit"
    )
    cells = {r["signal"]: r for r in points(influxd, database, "WHERE machine = 'cycler9'")}
    assert cells["PumpFlowRate"]["value"] == pytest.approx(90.0)  # 1.5 cm³/s
    assert (cells["PumpFlowRate"]["unit"], cells["PumpFlowRate"]["source_unit"]) == ("mL/min", "cm3/s")
    assert cells["WetFilmThickness"]["value"] == 180.0 and cells["WetFilmThickness"]["source_unit"] is None
    assert service.accounting.total("rejected") == 0
