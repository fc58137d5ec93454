"""Each machine's live state: the latest value of every signal, and a fan-out of changes to listeners.

The fan-out feeds the ``/stream`` Server-Sent Events; a slow listener loses its oldest events rather
than slowing the engine (bounded queues, drop-oldest).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from core.sample import Quality, Sample

LISTENER_QUEUE = 1000


@dataclass(slots=True)
class SignalState:
    value: float
    unit: str
    time_ns: int
    quality: str
    channel: str | None = None
    roll_id: str | None = None
    cell_id: str | None = None
    #: since when the signal has had no good value (source time of its first bad or uncertain sample)
    bad_since_ns: int | None = None


def signal_key(sample: Sample) -> str:
    """Cycler channels share signal names, so their key carries the channel (``ch01/voltage``)."""
    return f"{sample.channel}/{sample.signal}" if sample.channel else sample.signal


class LiveState:
    """line -> machine -> signal key -> latest SignalState."""

    def __init__(self) -> None:
        self.lines: dict[str, dict[str, dict[str, SignalState]]] = {}

    def update(self, samples: Iterable[Sample]) -> dict[str, dict[str, SignalState]]:
        """Apply samples (newer source time wins); returns what changed, by machine."""
        changed: dict[str, dict[str, SignalState]] = {}
        for s in samples:
            machine = self.lines.setdefault(s.line, {}).setdefault(s.machine, {})
            key = signal_key(s)
            old = machine.get(key)
            if old is not None and old.time_ns > s.source_time_ns:
                continue
            good = s.quality is Quality.GOOD
            bad_since = None if good else (old.bad_since_ns if old and old.bad_since_ns else s.source_time_ns)
            state = SignalState(
                s.value, s.unit, s.source_time_ns, s.quality.value, s.channel, s.roll_id, s.cell_id, bad_since
            )
            machine[key] = state
            changed.setdefault(s.machine, {})[key] = state
        return changed

    def dump_line(self, line: str) -> str:
        machines = self.lines.get(line, {})
        return json.dumps({m: {k: asdict(v) for k, v in sig.items()} for m, sig in machines.items()})

    def load_line(self, line: str, text: str) -> None:
        data = json.loads(text)
        self.lines[line] = {m: {k: SignalState(**v) for k, v in sig.items()} for m, sig in data.items()}


class Broadcaster:
    """Fan out events (dicts) to every listener's bounded queue."""

    def __init__(self) -> None:
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(LISTENER_QUEUE)
        self._listeners.add(queue)
        return queue

    def forget(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._listeners.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self._listeners:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @property
    def listeners(self) -> int:
        return len(self._listeners)
