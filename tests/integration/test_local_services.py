"""The test fixtures start real services that answer on their ports and survive a restart."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import paho.mqtt.client as mqtt
import pytest

from bench.e2e import pipeline_settings, upstream
from core.localservices import Influxd, Mosquitto, free_ports, start_influxd

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


def test_a_simulator_that_cannot_start_fails_the_harness_at_once_with_its_reason(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    settings = pipeline_settings(mosquitto.port, influxd.url, tmp_path)
    port = urlsplit(str(settings.plant.opcua_endpoint)).port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        began = time.monotonic()
        with pytest.raises(RuntimeError, match="cannot serve OPC UA"), upstream(settings):
            pass
    assert time.monotonic() - began < 60, "the failure is reported, not waited out"


def test_free_ports_are_distinct() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
