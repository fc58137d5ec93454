"""The live plant's bookkeeping: ground truth on onset, and plant/ stays private to the plant."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from plant.formation import Cell, CyclerSample, OcvReading
from plant.line import PilotLine
from plant.runtime import _publish_events
from plant.scenarios import get_scenario

ROOT = Path(__file__).resolve().parents[2]


class _Cyclers:
    """Stands in for the MQTT publishers: records what the runtime hands them."""

    def __init__(self) -> None:
        self.results: list[tuple[str, int, int, int]] = []
        self.readings: list[tuple[str, float, int]] = []

    def sample(self, channel: str, ts_ms: int, s: CyclerSample) -> None:
        raise AssertionError("events never publish samples")

    def result(self, cell: Cell, ts_ms: int, start_ms: int, end_ms: int) -> None:
        self.results.append((cell.cell_id, ts_ms, start_ms, end_ms))

    def ocv(self, reading: OcvReading, ts_ms: int) -> None:
        self.readings.append((reading.cell.cell_id, reading.age_days, ts_ms))


def test_ground_truth_line_is_written_when_the_onset_passes() -> None:
    line = PilotLine(get_scenario("dryer-zone-fault"), 3)
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    truth = io.StringIO()
    cyclers = _Cyclers()
    for _ in range(3700):
        _publish_events(line.step(1.0), start, cyclers, truth, "dryer-zone-fault")  # type: ignore[arg-type]
    (record,) = [json.loads(x) for x in truth.getvalue().splitlines()]
    assert record["fault"] == "dryer-zone-fault"
    assert datetime.fromisoformat(record["onset"]) == start + timedelta(seconds=3600)
    assert record["signals"][0] == "coater1.dryer_zone2_temperature"
    assert cyclers.results, "formations that ended were published"
    _, ts, begin, end = cyclers.results[0]
    assert begin < end <= ts
    assert cyclers.readings[0][1] == 0.0


def test_nothing_outside_plant_imports_the_plant() -> None:
    pattern = re.compile(r"^\s*(from|import)\s+plant\b", re.MULTILINE)
    for package in ("connectors", "models", "twin", "core"):
        for path in (ROOT / package).rglob("*.py"):
            assert not pattern.search(path.read_text()), f"{path} imports plant/"
