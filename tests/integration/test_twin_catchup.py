"""A twin killed -9 resumes from its snapshot and replays from InfluxDB what it missed, each sample once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from bench.e2e import twin_process
from core import bus
from core.influx.lineprotocol import process_points
from core.localservices import Influxd, Mosquitto, free_ports
from core.metricstext import total
from core.sample import Sample
from core.settings import Settings
from twin.catchup import Marks

pytestmark = pytest.mark.integration

SIGNALS = ("pump_flow", "web_speed", "wet_thickness")
T0 = 1_790_000_000 * 10**9


def _tick(line: str, k: int) -> list[Sample]:
    t = T0 + k * 10**9
    return [Sample(line, "coater1", name, 50.0 + k % 7, "mL/min", t, t) for name in SIGNALS]


class Plant:
    """Writes ticks as ingest does: to InfluxDB, and (unless told not to) on the plant bus."""

    def __init__(self, settings: Settings, influxd: Influxd) -> None:
        self.settings = settings
        self.influxd = influxd
        self.topic = settings.namespace().bus("coater1")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", settings.mqtt.port)
        self.client.loop_start()

    def feed(self, ticks: range, *, on_bus: bool = True) -> None:
        for k in ticks:
            samples = _tick(self.settings.line, k)
            answer = httpx.post(
                f"{self.influxd.url}/write",
                params={"db": self.settings.influx.database, "precision": "ns"},
                content="\n".join(process_points(samples)),
            )
            assert answer.status_code == 204
            if on_bus:
                self.client.publish(self.topic, bus.encode(samples), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _metric(settings: Settings, name: str) -> float:
    return total(f"http://127.0.0.1:{settings.twin.port}/metrics", name, line=settings.line)


def _until(condition: object, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what} not within {within_s} s"
        time.sleep(0.1)


def _marks(state_file: Path) -> Marks:
    with sqlite3.connect(state_file) as db:
        return Marks.load(db.execute("SELECT marks FROM line_snapshot").fetchone()[0])


def test_a_twin_killed_mid_stream_replays_what_it_missed_once(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    (twin_port,) = free_ports(1)
    line = f"cu{uuid.uuid4().hex[:6]}"
    settings = Settings.model_validate(
        {
            "line": line,
            "mqtt": {"port": mosquitto.port, "client_id_prefix": f"cu{uuid.uuid4().hex[:6]}"},
            "influx": {"url": influxd.url, "flush_interval_ms": 50},
            "twin": {"port": twin_port, "state_file": str(tmp_path / "twin.sqlite"), "insecure": True},
        }
    )
    influxd.create_database(settings.influx.database)
    plant = Plant(settings, influxd)
    try:
        with twin_process(settings) as first:
            _until(lambda: _connected(settings), 30, "the bus")
            plant.feed(range(100))
            _until(lambda: _metric(settings, "twin_samples_total") == 100 * len(SIGNALS), 30, "100 ticks")
            time.sleep(6.0)  # one snapshot (every 5 s) holds the 100 ticks
            plant.feed(range(100, 150))
            os.kill(first.pid, signal.SIGKILL)
            first.join(10)
        marks = _marks(settings.twin.state_file)
        snapshot_tick = (marks.since("coater1") - T0) // 10**9  # type: ignore[operator]
        assert snapshot_tick >= 99, "the snapshot kept at least the first 100 ticks"

        plant.feed(range(150, 200), on_bus=False)  # reached InfluxDB only, as after a broker queue limit
        with twin_process(settings):
            expected = (199 - snapshot_tick) * len(SIGNALS)
            _until(lambda: _metric(settings, "twin_samples_total") >= expected, 60, "the replay")
            time.sleep(2.0)  # the broker's redeliveries of ticks 100-149 arrive now, after the replay
            assert _metric(settings, "twin_samples_total") == expected, "each missed sample once, none twice"
            assert _metric(settings, "twin_replayed_samples_total") >= (199 - 149) * len(SIGNALS)
            plant.feed(range(200, 210))
            live = expected + 10 * len(SIGNALS)
            _until(lambda: _metric(settings, "twin_samples_total") == live, 30, "the live stream")
        marks = _marks(settings.twin.state_file)
        assert marks.since("coater1") == T0 + 209 * 10**9, "every signal analysed up to the last tick"
    finally:
        plant.close()


def _connected(settings: Settings) -> bool:
    body = httpx.get(f"http://127.0.0.1:{settings.twin.port}/health", timeout=5).json()
    return body["status"] == "ok"
