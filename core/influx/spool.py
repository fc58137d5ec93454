"""The disk spool: store-and-forward for batches the database could not take.

One append-only segment file per batch, written to a temporary name, fsynced, renamed and the directory
fsynced: a batch is either wholly in the spool or not at all, even across kill -9 or power loss, and
the writer acknowledges its sources only after that. Segments are numbered, so replay is in order. The
first line of a segment is a ``#`` comment holding the points' counts per (connector, source) for the
accounting.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".lp"

SourceCounts = Counter[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Segment:
    path: Path
    body: bytes
    counts: SourceCounts


class Spool:
    """Numbered segment files in ``directory``; ``append`` is durable when it returns."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.tmp"):
            stale.unlink()
        self._paths = sorted(directory.glob(f"*{SUFFIX}"))
        self._next = int(self._paths[-1].stem) + 1 if self._paths else 0

    def __len__(self) -> int:
        return len(self._paths)

    def append(self, body: bytes, counts: SourceCounts) -> None:
        header = json.dumps([[connector, source, n] for (connector, source), n in counts.items()])
        path = self.directory / f"{self._next:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as file:
            file.write(b"# " + header.encode() + b"\n" + body)
            file.flush()
            os.fsync(file.fileno())
        tmp.rename(path)
        self._fsync_directory()
        self._paths.append(path)
        self._next += 1

    def oldest(self) -> Segment | None:
        if not self._paths:
            return None
        path = self._paths[0]
        header, _, body = path.read_bytes().partition(b"\n")
        counts: SourceCounts = Counter(
            {(connector, source): n for connector, source, n in json.loads(header[2:])}
        )
        return Segment(path, body, counts)

    def remove(self, segment: Segment) -> None:
        segment.path.unlink()
        self._paths.remove(segment.path)
        self._fsync_directory()

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
