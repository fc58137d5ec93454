"""Catch a restored line up on what reached InfluxDB while its twin was down.

The twin saves each line's model state every few seconds together with its marks: per signal, the source
time of the newest sample it analysed. A twin killed -9 loses what it took from the bus since that
snapshot, and the broker holds a persistent session's messages only up to its queue limit. InfluxDB holds
every sample ingest wrote (spooled through its own outages), so on restart a line first replays from it
everything after its marks, in source-time order, and only then takes the bus again. The same marks drop
the bus messages it has already analysed, replayed or redelivered, so no sample is analysed twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from core.sample import Quality, Sample
from core.settings import InfluxSettings
from twin.influx import query

CHUNK_NS = 3600 * 10**9  # one plant hour per query and per replayed batch


def _key(sample: Sample) -> str:
    return f"{sample.machine}\x1f{sample.channel or ''}\x1f{sample.signal}"


class Marks:
    """Per signal (machine, channel, signal): the source time of the newest sample analysed."""

    def __init__(self, marks: dict[str, int] | None = None) -> None:
        self._marks = dict(marks or {})

    def __len__(self) -> int:
        return len(self._marks)

    def fresh(self, samples: Sequence[Sample]) -> list[Sample]:
        """The samples newer than their signal's mark (a signal not seen yet is always new)."""
        marks = self._marks
        return [s for s in samples if s.source_time_ns > marks.get(_key(s), -1)]

    def admit(self, samples: Sequence[Sample]) -> list[Sample]:
        """The fresh samples, with their marks moved on: what the model is about to analyse."""
        marks = self._marks
        fresh = []
        for s in samples:
            key = _key(s)
            if s.source_time_ns > marks.get(key, -1):
                marks[key] = s.source_time_ns
                fresh.append(s)
        return fresh

    def since(self, machine: str) -> int | None:
        """Where a machine's replay starts: its oldest mark, else the line's (a machine first seen later
        may have started while the twin was down)."""
        prefix = machine + "\x1f"
        own = [t for k, t in self._marks.items() if k.startswith(prefix)]
        if own:
            return min(own)
        return min(self._marks.values()) if self._marks else None

    def dump(self) -> str:
        return json.dumps(self._marks, separators=(",", ":"))

    @classmethod
    def load(cls, text: str | None) -> Marks:
        return cls({str(k): int(v) for k, v in json.loads(text).items()} if text else None)


async def _newest(settings: InfluxSettings, line: str) -> dict[str, int]:
    """Each machine's newest stored sample time."""
    statement = 'SELECT last("value") FROM "process" WHERE "line" = $line GROUP BY "machine"'
    series = await query(settings, statement, {"line": line})
    return {s["tags"]["machine"]: int(s["values"][0][0]) for s in series if s.get("values")}


def _samples(line: str, machine: str, series: list[dict[str, Any]], received_ns: int) -> list[Sample]:
    samples = []
    for s in series:
        tags = s.get("tags", {})
        columns = s["columns"]
        at = {name: columns.index(name) for name in ("time", "value", "seq", "roll_id", "cell_id")}
        for row in s.get("values", []):
            value = row[at["value"]]
            if value is None:
                continue
            seq = row[at["seq"]]
            samples.append(
                Sample(
                    line,
                    machine,
                    tags.get("signal", ""),
                    float(value),
                    tags.get("unit", ""),
                    int(row[at["time"]]),
                    received_ns,
                    quality=Quality(tags.get("quality") or Quality.GOOD),
                    seq=None if seq is None else int(seq),
                    channel=tags.get("channel") or None,
                    roll_id=row[at["roll_id"]],
                    cell_id=row[at["cell_id"]],
                    source_unit=tags.get("source_unit") or None,
                )
            )
    return samples


async def backlog(
    settings: InfluxSettings, line: str, machines: Iterable[str], marks: Marks, oldest_ns: int
) -> AsyncIterator[list[Sample]]:
    """What InfluxDB holds of ``machines`` after their marks, in batches of at most one plant hour, each
    in source-time order. Replay never reaches back before ``oldest_ns``. A batch is fetched once the one
    before it has been analysed (and the marks advanced), so a long outage never sits in memory whole."""
    newest = await _newest(settings, line)
    starts = {m: max(since, oldest_ns - 1) for m in machines if (since := marks.since(m)) is not None}
    starts = {m: t for m, t in starts.items() if newest.get(m, t) > t}
    if not starts:
        return
    t = min(starts.values())
    end = max(newest[m] for m in starts)
    while t < end:
        upper = min(t + CHUNK_NS, end)
        batch: list[Sample] = []
        for machine, start in starts.items():
            if start >= upper:
                continue
            series = await query(
                settings,
                'SELECT "value", "seq", "roll_id", "cell_id" FROM "process" WHERE "line" = $line AND '
                f'"machine" = $machine AND time > {max(t, start)} AND time <= {upper} GROUP BY *',
                {"line": line, "machine": machine},
            )
            batch += _samples(line, machine, series, time.time_ns())
        fresh = marks.fresh(batch)
        if fresh:
            fresh.sort(key=lambda s: (s.source_time_ns, s.machine, s.channel or ""))
            yield fresh
        t = upper
