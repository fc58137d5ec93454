"""Where each JSON channel's sequence stands, kept on disk so a restarted ingest still sees its gaps.

A publisher numbers each channel's records gap-free; a gap is what the broker never delivered. Held
in memory only, a restarted ingest took the first number it received as the start: when the broker
lost messages while ingest was down too (Mosquitto acknowledges a QoS 1 publish before it saves it,
and saves once a second), the loss was silent. The file holds, per channel, the run, the newest number
handed to the pipeline (journalled, so durable) and the ranges skipped, written at most once a second
and at shutdown by atomic rename. It may lag by that second: what follows is then taken as new, and
InfluxDB stores a point it already has once (same series and time); it never runs ahead, so nothing is
taken for a redelivery that was not handed over.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

MAX_GAPS = 64  # skipped ranges remembered per channel, newest kept
WRITE_INTERVAL_S = 1.0


@dataclass
class ChannelSequence:
    """Where a channel's sequence stands: the newest number, and the ranges skipped so far. A number
    from a skipped range that arrives later is late, not a redelivery: a publisher that reconnects may
    send its new messages before the backlog it queued while the broker was away."""

    run: str | None
    last: int
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def skip(self, first: int, last: int) -> None:
        self.gaps.append((first, last))
        del self.gaps[:-MAX_GAPS]

    def fill(self, seq: int) -> bool:
        """Whether ``seq`` was skipped (and is now taken out of its range)."""
        for i, (first, last) in enumerate(self.gaps):
            if first <= seq <= last:
                self.gaps[i : i + 1] = [r for r in ((first, seq - 1), (seq + 1, last)) if r[0] <= r[1]]
                return True
        return False


class SequenceFile:
    """The channels' sequences of one ingest client (its persistent session) in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written_at = 0.0

    def load(self) -> dict[str, ChannelSequence]:
        """The stored sequences; none when the file is missing or unreadable (gaps then show from the
        next numbers on, as before the file existed)."""
        try:
            stored = json.loads(self.path.read_text())
            return {
                source: ChannelSequence(entry["run"], int(entry["last"]), [(a, b) for a, b in entry["gaps"]])
                for source, entry in stored.items()
            }
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "sequence file unreadable, starting afresh", extra={"path": str(self.path), "error": str(exc)}
            )
            return {}

    def save(
        self, sequences: dict[str, ChannelSequence], *, now: float | None = None, force: bool = False
    ) -> bool:
        """Write unless the last write is less than ``WRITE_INTERVAL_S`` ago; whether it wrote."""
        now = time.monotonic() if now is None else now
        if not force and now - self._written_at < WRITE_INTERVAL_S:
            return False
        self._written_at = now
        if not sequences:
            return True
        document = {s: {"run": q.run, "last": q.last, "gaps": q.gaps} for s, q in sequences.items()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(json.dumps(document))
        os.replace(partial, self.path)
        return True
