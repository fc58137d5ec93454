"""A twin worker killed -9 has its line taken over by a standby, which hands it back when the owner returns.

Both workers share one state file, as on one host or one shared volume: the standby resumes the dead
worker's snapshot, replays from InfluxDB what came after it, and judges each sample once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from bench.e2e import twin_process
from core.localservices import Influxd, Mosquitto, free_ports
from core.metricstext import total
from core.settings import Settings
from tests.integration.test_twin_catchup import SIGNALS, T0, Plant, _connected, _until
from twin.catchup import Marks

pytestmark = pytest.mark.integration


def _settings(base: dict[str, object], port: int, owns: str, standby: list[str]) -> Settings:
    twin = dict(base["twin"])  # type: ignore[call-overload]
    twin |= {"port": port, "lines": [owns], "standby_lines": standby}
    return Settings.model_validate(base | {"line": owns, "twin": twin})


def _count(settings: Settings, name: str, **labels: str) -> float:
    return total(f"http://127.0.0.1:{settings.twin.port}/metrics", name, **labels)


def test_a_standby_takes_over_a_killed_worker_line_and_hands_it_back(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
) -> None:
    owner_port, standby_port = free_ports(2)
    line, other = f"to{uuid.uuid4().hex[:6]}", f"tb{uuid.uuid4().hex[:6]}"
    base: dict[str, object] = {
        "mqtt": {"port": mosquitto.port, "client_id_prefix": f"to{uuid.uuid4().hex[:6]}"},
        "influx": {"url": influxd.url, "flush_interval_ms": 50},
        "twin": {"state_file": str(tmp_path / "twin.sqlite"), "insecure": True},
    }
    owner = _settings(base, owner_port, line, [])
    standby = _settings(base, standby_port, other, [line])
    influxd.create_database(owner.influx.database)
    plant = Plant(owner, influxd)
    per_tick = len(SIGNALS)

    def judged(settings: Settings) -> float:
        return _count(settings, "twin_samples_total", line=line)

    def handovers(direction: str) -> float:
        return _count(standby, "twin_line_handovers_total", line=line, direction=direction)

    try:
        with twin_process(standby):
            with twin_process(owner) as first:
                _until(lambda: _connected(owner) and _connected(standby), 30, "the bus")
                plant.feed(range(100))
                _until(lambda: judged(owner) == 100 * per_tick, 30, "100 ticks")
                assert judged(standby) == 0, "a standby waits while the owner runs"
                taken = handovers("taken")  # at most its start: the owner was not up yet
                _until(lambda: _tick_saved(owner.twin.state_file, line) == 99, 15, "the owner's snapshot")
                plant.feed(range(100, 110))
                os.kill(first.pid, signal.SIGKILL)
                killed = time.monotonic()
                first.join(10)
            snapshot_tick = _tick_saved(owner.twin.state_file, line)
            _until(lambda: handovers("taken") == taken + 1, 15, "the takeover")
            print(f"line taken over {time.monotonic() - killed:.1f} s after the kill -9")
            plant.feed(range(110, 150))
            expected = (149 - snapshot_tick) * per_tick
            _until(lambda: judged(standby) >= expected, 30, "the standby's catch-up")
            assert judged(standby) == expected, "each sample once, none twice"

            released = handovers("released")
            with twin_process(owner):
                _until(lambda: handovers("released") == released + 1, 30, "the hand-back")
                _until(lambda: _connected(owner), 30, "the owner")
                plant.feed(range(150, 160))
                _until(lambda: _tick_saved(owner.twin.state_file, line) == 159, 30, "the owner's analysis")
                assert judged(owner) == 10 * per_tick, "the owner judged from the hand-back on"
                assert judged(standby) == expected, "the standby stopped at the hand-back"
    finally:
        plant.close()


def _tick_saved(state_file: Path, line: str) -> int:
    """The last tick the line's snapshot holds."""
    with sqlite3.connect(state_file) as db:
        row = db.execute("SELECT marks FROM line_snapshot WHERE line = ?", (line,)).fetchone()
    if row is None or Marks.load(row[0]).since("coater1") is None:
        return -1
    marks = Marks.load(row[0])
    return (marks.since("coater1") - T0) // 10**9  # type: ignore[operator]
