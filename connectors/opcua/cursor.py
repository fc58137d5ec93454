"""Where an OPC UA endpoint's stream stands, kept on disk so a restarted ingest backfills from there.

A subscription delivers only what changes after it starts: the ticks a server produced while ``twin
ingest`` was down (killed, upgraded, rebooted) are never sent. Where the server keeps history they can
be read back, but only from a known point. The cursor is the newest source time handed to the pipeline
(journalled, so durable), written at most once a second by atomic rename; a restart reads at most a
second's values twice, which InfluxDB stores once (same series and time).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

WRITE_INTERVAL_S = 1.0


class Cursor:
    """The newest handed-over source time of one endpoint, in ``<directory>/<hash of endpoint>``."""

    def __init__(self, directory: Path, endpoint: str) -> None:
        self.path = directory / hashlib.sha256(endpoint.encode()).hexdigest()[:16]
        self._written_at = 0.0
        self._written_ns = 0

    def load(self) -> int:
        """The stored time (0 when none, or unreadable: then the gap stays a visible gap)."""
        try:
            return int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def save(self, newest_ns: int, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if newest_ns <= self._written_ns or now - self._written_at < WRITE_INTERVAL_S:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".partial")
        partial.write_text(str(newest_ns))
        os.replace(partial, self.path)
        self._written_at, self._written_ns = now, newest_ns
