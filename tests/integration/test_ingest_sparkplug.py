"""Sparkplug B from the simulator's cyclers, and a rebirth requested after a seq gap."""

from __future__ import annotations

import asyncio
import time
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
    settings = settings.model_copy(update={"site": f"site{free_port()}"})  # its own Sparkplug group
    plant_settings = settings.model_copy(
        update={
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
    spy.subscribe(f"spBv1.0/{settings.namespace().sparkplug_group}/NCMD/+", qos=1)
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
        group = settings.namespace().sparkplug_group
        node = service.mqtt._hosts[id(service.mqtt.sources[1])].nodes[(group, "cycler1")]
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


async def test_two_channels_metrics_on_one_device_are_each_stored_under_their_own_series(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    """A gateway publishing ``Channel01/Voltage`` and ``Channel02/Voltage`` on one device: nothing is lost
    to two metrics overwriting one series, and the unit comes from the birth certificate."""
    from connectors.tagmap import MqttSource, TagMap
    from core.sparkplug import DataType, MessageType, Topic

    settings = ingest_settings(tmp_path, mosquitto, influxd, ingest={"bus_enabled": False})
    group = f"g{free_port()}"
    tag_map = TagMap(mqtt=[MqttSource(topic=f"spBv1.0/{group}/#", machine="cycler9", format="sparkplug")])
    service = IngestService(settings, tag_map)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")

    edge = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    edge.connect(mosquitto.host, mosquitto.port)
    edge.loop_start()
    now_ms = int(time.time() * 1000)

    def send(kind: MessageType, seq: int, metrics: list[dict[str, object]], device: str | None) -> None:
        payload = Payload(timestamp=now_ms + seq, seq=seq)
        for metric in metrics:
            payload.metrics.add(**metric)  # type: ignore[arg-type]
        edge.publish(
            str(Topic(group, kind, "gw", device)), payload.SerializeToString(), qos=1
        ).wait_for_publish()

    unit = Payload.PropertySet(
        keys=["engUnit"], values=[Payload.PropertyValue(type=DataType.STRING, string_value="V")]
    )
    send(MessageType.NBIRTH, 0, [{"name": "bdSeq", "datatype": DataType.UINT64, "long_value": 0}], None)
    send(
        MessageType.DBIRTH,
        1,
        [
            {"name": f"Channel0{k}/Voltage", "alias": k, "datatype": DataType.DOUBLE, "properties": unit}
            for k in (1, 2)
        ],
        "Gateway",
    )
    messages = 20
    for n in range(messages):
        values = [{"alias": 1, "double_value": 3.6 + n / 1000}, {"alias": 2, "double_value": 3.7 + n / 1000}]
        send(MessageType.DDATA, 2 + n, values, "Gateway")
    database = settings.influx.database
    await wait_for(lambda: len(points(influxd, database, "WHERE machine = 'cycler9'")) >= 2 * messages)
    edge.loop_stop()
    rows = points(influxd, database, "WHERE machine = 'cycler9'")
    by_signal: dict[str, list[float]] = {}
    for row in rows:
        assert row["unit"] == "V" and row["channel"] == "Gateway"
        by_signal.setdefault(row["signal"], []).append(row["value"])
    assert sorted(by_signal) == ["Channel01/Voltage", "Channel02/Voltage"]
    assert sorted(by_signal["Channel02/Voltage"]) == [pytest.approx(3.7 + n / 1000) for n in range(messages)]
    assert service.accounting.total("rejected") == 0
    stop.set()
    await task
