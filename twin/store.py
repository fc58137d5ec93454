"""The rest of the twin's state file: line snapshots (model state + live values), the roll/cell genealogy,
and who re-baselined which step's model when.

Same SQLite file as the alerts (``twin.state_file``), so one backup or one shared volume carries everything
a worker needs to take a line over.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from core.sample import Sample
from twin.fair import iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS line_snapshot (
    line TEXT PRIMARY KEY, at_ns INTEGER NOT NULL, model BLOB NOT NULL, live TEXT NOT NULL,
    marks TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS roll (
    roll_id TEXT NOT NULL, machine TEXT NOT NULL, line TEXT NOT NULL,
    first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, PRIMARY KEY (roll_id, machine)
);
CREATE TABLE IF NOT EXISTS cell (
    cell_id TEXT PRIMARY KEY, roll_id TEXT, line TEXT NOT NULL, machine TEXT NOT NULL, channel TEXT,
    first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cell_by_roll ON cell (roll_id);
CREATE TABLE IF NOT EXISTS model_event (
    line TEXT NOT NULL, step TEXT NOT NULL, action TEXT NOT NULL, who TEXT NOT NULL, note TEXT NOT NULL,
    at_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS passport (
    record TEXT NOT NULL, version INTEGER NOT NULL, built_ns INTEGER NOT NULL, digest TEXT NOT NULL,
    document TEXT NOT NULL, PRIMARY KEY (record, version)
);
CREATE TABLE IF NOT EXISTS whatif_run (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at_ns INTEGER NOT NULL, request TEXT NOT NULL, result TEXT NOT NULL
);
"""


@dataclass(slots=True, frozen=True)
class ModelEvent:
    line: str
    step: str
    action: str
    who: str
    note: str
    at_ns: int


@dataclass(slots=True, frozen=True)
class Snapshot:
    line: str
    at_ns: int
    model: bytes
    live: str
    #: ``twin.catchup.Marks`` as JSON: per signal, the newest source time the model analysed
    marks: str = "{}"


@dataclass(slots=True, frozen=True)
class RollRecord:
    roll_id: str
    machine: str
    line: str
    first_ns: int
    last_ns: int


@dataclass(slots=True, frozen=True)
class CellRecord:
    cell_id: str
    roll_id: str | None
    line: str
    machine: str
    channel: str | None
    first_ns: int
    last_ns: int


class StateStore:
    """Snapshots and genealogy in the twin's SQLite file."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(line_snapshot)")}
        if "marks" not in columns:  # a state file from before the twin caught up from InfluxDB
            self._db.execute("ALTER TABLE line_snapshot ADD COLUMN marks TEXT NOT NULL DEFAULT '{}'")

    def save_snapshot(
        self, line: str, model: bytes, live: str, at_ns: int | None = None, marks: str = "{}"
    ) -> None:
        """Model, live values and marks in one statement, so a kill never leaves them out of step."""
        self._db.execute(
            "INSERT INTO line_snapshot (line, at_ns, model, live, marks) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(line) DO UPDATE SET at_ns = excluded.at_ns, model = excluded.model,"
            " live = excluded.live, marks = excluded.marks",
            (line, time.time_ns() if at_ns is None else at_ns, model, live, marks),
        )

    def load_snapshot(self, line: str) -> Snapshot | None:
        row = self._db.execute(
            "SELECT line, at_ns, model, live, marks FROM line_snapshot WHERE line = ?", (line,)
        ).fetchone()
        return Snapshot(row[0], row[1], bytes(row[2]), row[3], row[4]) if row else None

    def record_genealogy(self, samples: Iterable[Sample]) -> None:
        """Remember which rolls each machine processed and which roll each cell was built from."""
        rolls: dict[tuple[str, str], tuple[str, int, int]] = {}
        cells: dict[str, tuple[str | None, str, str, str | None, int, int]] = {}
        for sample in samples:
            t = sample.source_time_ns
            if sample.roll_id:
                key = (sample.roll_id, sample.machine)
                _, first, last = rolls.get(key, (sample.line, t, t))
                rolls[key] = (sample.line, min(first, t), max(last, t))
            if sample.cell_id:
                old = cells.get(sample.cell_id)
                first, last = (min(old[4], t), max(old[5], t)) if old else (t, t)
                cells[sample.cell_id] = (
                    sample.roll_id or (old[0] if old else None),  # an aging reading names no roll
                    sample.line,
                    sample.machine,
                    sample.channel,
                    first,
                    last,
                )
        if not rolls and not cells:
            return
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT INTO roll (roll_id, machine, line, first_ns, last_ns) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(roll_id, machine) DO UPDATE SET first_ns = min(first_ns, excluded.first_ns),"
            " last_ns = max(last_ns, excluded.last_ns)",
            [(roll, machine, *rest) for (roll, machine), rest in rolls.items()],
        )
        self._db.executemany(
            "INSERT INTO cell (cell_id, roll_id, line, machine, channel, first_ns, last_ns)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(cell_id) DO UPDATE SET"
            " roll_id = coalesce(excluded.roll_id, roll_id), first_ns = min(first_ns, excluded.first_ns),"
            " last_ns = max(last_ns, excluded.last_ns)",
            [(cell, *rest) for cell, rest in cells.items()],
        )
        self._db.execute("COMMIT")

    def roll(self, roll_id: str) -> list[RollRecord]:
        rows = self._db.execute(
            "SELECT roll_id, machine, line, first_ns, last_ns FROM roll WHERE roll_id = ? ORDER BY first_ns",
            (roll_id,),
        )
        return [RollRecord(*row) for row in rows]

    def cells_of_roll(self, roll_id: str) -> list[CellRecord]:
        rows = self._db.execute(
            "SELECT cell_id, roll_id, line, machine, channel, first_ns, last_ns FROM cell WHERE roll_id = ?"
            " ORDER BY cell_id",
            (roll_id,),
        )
        return [CellRecord(*row) for row in rows]

    def cell(self, cell_id: str) -> CellRecord | None:
        row = self._db.execute(
            "SELECT cell_id, roll_id, line, machine, channel, first_ns, last_ns FROM cell WHERE cell_id = ?",
            (cell_id,),
        ).fetchone()
        return CellRecord(*row) if row else None

    def rolls_since(self, line: str, machine: str, since_ns: int) -> list[str]:
        """Rolls a machine worked on at or after ``since_ns``: the material an alert affects."""
        rows = self._db.execute(
            "SELECT roll_id FROM roll WHERE line = ? AND machine = ? AND last_ns >= ? ORDER BY first_ns",
            (line, machine, since_ns),
        )
        return [row[0] for row in rows]

    def cells_of_rolls(self, roll_ids: Iterable[str]) -> list[str]:
        ids = list(roll_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT cell_id FROM cell WHERE roll_id IN ({marks}) ORDER BY cell_id", ids)
        return [row[0] for row in rows]

    def record_model_event(self, line: str, step: str, action: str, who: str, note: str) -> int:
        """Keep who did what to a step's model and when (a re-baseline after maintenance)."""
        at = time.time_ns()
        self._db.execute(
            "INSERT INTO model_event (line, step, action, who, note, at_ns) VALUES (?, ?, ?, ?, ?, ?)",
            (line, step, action, who, note, at),
        )
        return at

    def model_events(self, line: str) -> list[ModelEvent]:
        rows = self._db.execute(
            "SELECT line, step, action, who, note, at_ns FROM model_event WHERE line = ? ORDER BY rowid",
            (line,),
        )
        return [ModelEvent(*row) for row in rows]

    def keep_passport(
        self,
        record: str,
        document: dict[str, Any],
        points: Callable[[dict[str, Any]], int],
        final: Callable[[dict[str, Any]], bool] = lambda _: False,
    ) -> dict[str, Any]:
        """The versioned record of ``document`` (a cell's or a roll's): stored as version 1, or as the
        next version when it differs from the latest. The latest stands when it is the same, when it
        is ``final`` (a screened cell: its record is the one made then, whatever the models learnt
        since), or when the new one summarises fewer stored values (InfluxDB's retention dropped
        them). Each returned record carries ``passportVersion`` and ``built``, so a re-export of an old
        cell is the record made then."""
        body = json.dumps(document, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(body.encode()).hexdigest()
        latest = self.passport(record)
        if latest is not None:
            stored = {k: v for k, v in latest.items() if k not in ("passportVersion", "built", "digest")}
            if latest["digest"] == digest or final(stored) or points(document) < points(stored):
                return {k: v for k, v in latest.items() if k != "digest"}
        version = 1 if latest is None else int(latest["passportVersion"]) + 1
        built = time.time_ns()
        self._db.execute(
            "INSERT INTO passport (record, version, built_ns, digest, document) VALUES (?, ?, ?, ?, ?)",
            (record, version, built, digest, body),
        )
        found = self.passport(record, version)
        assert found is not None
        return {k: v for k, v in found.items() if k != "digest"}

    def passport(self, record: str, version: int | None = None) -> dict[str, Any] | None:
        """A stored record (the latest version unless one is asked), with its digest."""
        if version is None:
            row = self._db.execute(
                "SELECT version, built_ns, digest, document FROM passport WHERE record = ?"
                " ORDER BY version DESC LIMIT 1",
                (record,),
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT version, built_ns, digest, document FROM passport WHERE record = ? AND version = ?",
                (record, version),
            ).fetchone()
        if row is None:
            return None
        document = json.loads(row[3])
        return {**document, "passportVersion": row[0], "built": iso(row[1]), "digest": row[2]}

    def cells_since(self, line: str, since_ns: int) -> list[str]:
        """Cells of a line whose formation began at or after ``since_ns``."""
        rows = self._db.execute(
            "SELECT cell_id FROM cell WHERE line = ? AND first_ns >= ? ORDER BY first_ns", (line, since_ns)
        )
        return [row[0] for row in rows]

    def save_whatif(self, request: str, result: str) -> int:
        """Keep a what-if run (JSON request and result) so an engineer can cite it later."""
        cursor = self._db.execute(
            "INSERT INTO whatif_run (at_ns, request, result) VALUES (?, ?, ?)",
            (time.time_ns(), request, result),
        )
        return int(cursor.lastrowid or 0)
