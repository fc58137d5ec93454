"""Bad input on a live connection is rejected and counted by reason; good data on it is still written."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from connectors.service import IngestService
from core.localservices import Influxd, Mosquitto
from core.sparkplug import DataType, Payload
from tests.integration.ingest_support import count, ingest_settings, points, wait_for

pytestmark = pytest.mark.integration

TOPIC = "site1/electrodes/line1/cycler1/ch07/data"
GROUP = "spBv1.0/site1.electrodes.line1"


def _birth() -> bytes:
    payload = Payload(timestamp=int(time.time() * 1000), seq=0)
    metric = payload.metrics.add(name="bdSeq", datatype=DataType.INT64, long_value=0)
    assert metric.name == "bdSeq"
    return payload.SerializeToString()


async def test_each_bad_input_is_rejected_with_its_reason_and_good_data_still_arrives(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    settings = ingest_settings(tmp_path, mosquitto, influxd, ingest={"max_payload_bytes": 2048})
    service = IngestService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await wait_for(lambda: service.mqtt is not None and service.mqtt.subscribed.is_set(), what="subscription")
    now = time.time_ns()
    good = {"seq": 0, "run": "r", "ts": now, "voltage": 3.6}
    bad: list[tuple[str, bytes]] = [
        (TOPIC, b"{not json"),
        (TOPIC, b'{"seq": 1, "run": "r", "ts": %d, "voltage": NaN}' % now),
        (TOPIC, b'{"seq": 2, "run": "r", "ts": %d, "voltage": Infinity}' % now),
        (TOPIC, json.dumps({"seq": 3, "run": "r", "ts": now, "voltage": "high"}).encode()),
        (TOPIC, json.dumps({"seq": 4, "run": "r", "ts": now, "humidity": 40.0}).encode()),
        (TOPIC, json.dumps({"seq": 5, "run": "r", "ts": 1, "voltage": 3.6}).encode()),
        (
            TOPIC,
            json.dumps({"seq": 6, "run": "r", "ts": "2199-01-01T00:00:00+00:00", "voltage": 3.6}).encode(),
        ),
        (TOPIC, json.dumps({"seq": 7, "run": "r", "ts": now, "voltage": 3.6, "pad": "x" * 4096}).encode()),
        (f"{GROUP}/NOTSPARKPLUG/cycler1", b"\x00"),
        (f"{GROUP}/NBIRTH/cycler1", _birth()[:-3]),
        (f"{GROUP}/NDATA/cycler1", b"\xff\xfe\xfd garbage"),
    ]
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()
    for topic, payload in bad:
        client.publish(topic, payload, qos=1)
    client.publish(TOPIC, json.dumps({**good, "seq": 8}).encode(), qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()

    database = settings.influx.database
    await wait_for(lambda: count(influxd, database) >= 1, what="the good sample")
    await wait_for(lambda: service.accounting.total("rejected") >= 11, what="all rejects")
    assert not task.done(), "the ingest process must survive bad input"
    assert service.accounting.total("seq_gaps") == 1, (
        "records rejected after parsing keep their seq; only the unread oversized one is a gap"
    )
    reasons: Counter[str] = Counter()
    for counter in service.accounting.values():
        if counter.name == "rejected":
            reasons[counter.reason] += int(counter.value)
    assert reasons == {
        "malformed_json": 1,
        "non_finite": 2,
        "wrong_type": 1,
        "unknown_signal": 1,
        "stale_timestamp": 1,
        "future_timestamp": 1,
        "oversized_payload": 1,
        "unknown_topic": 1,
        "malformed_protobuf": 2,
    }
    rows = points(influxd, database)
    assert [(row["channel"], row["seq"], row["value"]) for row in rows] == [("ch07", 8, 3.6)]
    stop.set()
    await task
