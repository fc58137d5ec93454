"""The test fixtures start real services that answer on their ports and survive a restart."""

from __future__ import annotations

import httpx
import paho.mqtt.client as mqtt
import pytest

from core.localservices import Influxd, Mosquitto, start_influxd

pytestmark = pytest.mark.integration


def test_mosquitto_accepts_a_paho_client(mosquitto: Mosquitto) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    assert client.connect(mosquitto.host, mosquitto.port) == mqtt.MQTT_ERR_SUCCESS
    client.disconnect()


def test_influxd_keeps_written_points_across_a_restart() -> None:
    influx: Influxd = start_influxd()
    try:
        influx.create_database("t")
        response = httpx.post(f"{influx.url}/write", params={"db": "t"}, content=b"m,a=b v=1 1000000000")
        assert response.status_code == 204
        influx.kill()
        influx.start()
        series = influx.query("SELECT v FROM m", "t")
        assert series[0]["values"] == [["1970-01-01T00:00:01Z", 1]]
    finally:
        influx.cleanup()
