"""Alerts with the ISA-18.2 alarm states, persisted in SQLite so a restart of the twin loses none.

ISA-18.2 (ANSI/ISA-18.2-2016, figure 5, the alarm state transition diagram) gives an alarm two
independent facts, whether its *condition* is active and whether an operator has *acknowledged* it, plus
shelving, which hides it for a limited time. The state an operator sees follows from those facts:

    condition active, unacknowledged   -> ``active_unacknowledged`` (A: new alarm)
    condition active, acknowledged     -> ``acknowledged``           (B)
    condition cleared, unacknowledged  -> ``returned_unacknowledged`` (D: returned to normal, unack)
    condition cleared, acknowledged    -> ``normal``                 (closed; a new occurrence is a new alert)
    shelved until T                    -> ``shelved``               (hidden until T, then back to the above)

Every action (raise, clear, acknowledge, shelve, unshelve) is recorded with who and when in an event
table, so the audit trail that ISA-18.2 asks for is a query away. stdlib sqlite3 in WAL mode: one file,
no server, atomic commits that survive a kill, and readers that never block the engine's writes.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import LinetwinError

ENGINE = "twin"


class AlertNotFound(LinetwinError):
    """No alert has this id."""


class AlertConflict(LinetwinError):
    """The action does not apply to the alert in its current state."""


class AlertState(enum.StrEnum):
    """What an operator sees (ISA-18.2 alarm states)."""

    ACTIVE_UNACKNOWLEDGED = "active_unacknowledged"
    ACKNOWLEDGED = "acknowledged"
    RETURNED_UNACKNOWLEDGED = "returned_unacknowledged"
    NORMAL = "normal"
    SHELVED = "shelved"


@dataclass(slots=True)
class Occurrence:
    """A detector's verdict that a condition is active, as the engine hands it to the alert store."""

    line: str
    machine: str
    signal: str
    cause: str
    title: str
    text: str
    action: str
    magnitude: float
    unit: str
    onset_ns: int
    detector: str = ""
    rolls: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """One alert per line, machine, signal and cause: a condition that persists is one alarm."""
        return f"{self.line}/{self.machine}/{self.signal}/{self.cause}"


@dataclass(slots=True)
class Alert:
    """An alarm and the facts ISA-18.2 derives its state from."""

    id: int
    key: str
    line: str
    machine: str
    signal: str
    cause: str
    title: str
    text: str
    action: str
    magnitude: float
    unit: str
    onset_ns: int
    detector: str
    rolls: list[str]
    cells: list[str]
    raised_ns: int
    updated_ns: int
    condition_active: bool
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_ns: int | None
    shelved_until_ns: int | None
    shelved_by: str | None
    cleared_ns: int | None

    def state(self, now_ns: int | None = None) -> AlertState:
        now = time.time_ns() if now_ns is None else now_ns
        if self.shelved_until_ns is not None and self.shelved_until_ns > now:
            return AlertState.SHELVED
        if self.condition_active:
            return AlertState.ACKNOWLEDGED if self.acknowledged else AlertState.ACTIVE_UNACKNOWLEDGED
        return AlertState.NORMAL if self.acknowledged else AlertState.RETURNED_UNACKNOWLEDGED


@dataclass(slots=True, frozen=True)
class AlertEvent:
    """One entry of an alert's audit trail."""

    alert_id: int
    at_ns: int
    action: str
    who: str
    note: str


_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    line TEXT NOT NULL, machine TEXT NOT NULL, signal TEXT NOT NULL, cause TEXT NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL, action TEXT NOT NULL,
    magnitude REAL NOT NULL, unit TEXT NOT NULL, onset_ns INTEGER NOT NULL, detector TEXT NOT NULL,
    rolls TEXT NOT NULL, cells TEXT NOT NULL,
    raised_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,
    condition_active INTEGER NOT NULL, acknowledged INTEGER NOT NULL,
    acknowledged_by TEXT, acknowledged_ns INTEGER,
    shelved_until_ns INTEGER, shelved_by TEXT, cleared_ns INTEGER
);
CREATE INDEX IF NOT EXISTS alert_open ON alert (key, condition_active, acknowledged);
CREATE TABLE IF NOT EXISTS alert_event (
    alert_id INTEGER NOT NULL REFERENCES alert(id), at_ns INTEGER NOT NULL,
    action TEXT NOT NULL, who TEXT NOT NULL, note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_event_by_alert ON alert_event (alert_id, at_ns);
"""

_COLUMNS = (
    "id, key, line, machine, signal, cause, title, text, action, magnitude, unit, onset_ns, detector, "
    "rolls, cells, raised_ns, updated_ns, condition_active, acknowledged, acknowledged_by, "
    "acknowledged_ns, shelved_until_ns, shelved_by, cleared_ns"
)


def open_database(path: Path) -> sqlite3.Connection:
    """Open the twin's state file in WAL mode (readers never block the writer; commits survive a kill)."""
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class AlertStore:
    """The alert table and its audit trail; every method is one transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _event(self, alert_id: int, at_ns: int, action: str, who: str, note: str = "") -> None:
        self._db.execute(
            "INSERT INTO alert_event (alert_id, at_ns, action, who, note) VALUES (?, ?, ?, ?, ?)",
            (alert_id, at_ns, action, who, note),
        )

    def raise_condition(self, occurrence: Occurrence, now_ns: int | None = None) -> tuple[Alert, bool]:
        """The condition is active: update its open alert or open a new one. Returns (alert, is_new)."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._transaction():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM alert WHERE key = ?"
                " AND NOT (condition_active = 0 AND acknowledged = 1) ORDER BY id DESC LIMIT 1",
                (occurrence.key,),
            ).fetchone()
            if row is None:
                cursor = self._db.execute(
                    "INSERT INTO alert (key, line, machine, signal, cause, title, text, action, magnitude,"
                    " unit, onset_ns, detector, rolls, cells, raised_ns, updated_ns, condition_active,"
                    " acknowledged)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 0)",
                    (
                        occurrence.key,
                        occurrence.line,
                        occurrence.machine,
                        occurrence.signal,
                        occurrence.cause,
                        occurrence.title,
                        occurrence.text,
                        occurrence.action,
                        occurrence.magnitude,
                        occurrence.unit,
                        occurrence.onset_ns,
                        occurrence.detector,
                        json.dumps(occurrence.rolls),
                        json.dumps(occurrence.cells),
                        now,
                        now,
                    ),
                )
                alert_id = int(cursor.lastrowid or 0)
                self._event(alert_id, now, "raise", ENGINE, occurrence.text)
                return self._get(alert_id), True
            alert = _alert(row)
            reactivated = not alert.condition_active
            self._db.execute(
                "UPDATE alert SET text = ?, magnitude = ?, rolls = ?, cells = ?, updated_ns = ?,"
                " condition_active = 1, acknowledged = CASE WHEN ? THEN 0 ELSE acknowledged END,"
                " cleared_ns = NULL WHERE id = ?",
                (
                    occurrence.text,
                    occurrence.magnitude,
                    json.dumps(sorted(set(alert.rolls) | set(occurrence.rolls))),
                    json.dumps(sorted(set(alert.cells) | set(occurrence.cells))),
                    now,
                    reactivated,
                    alert.id,
                ),
            )
            if reactivated:
                self._event(alert.id, now, "raise", ENGINE, occurrence.text)
            return self._get(alert.id), reactivated

    def clear_condition(self, key: str, now_ns: int | None = None) -> Alert | None:
        """The condition returned to normal; returns the alert it changed, if any."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._transaction():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM alert WHERE key = ? AND condition_active = 1"
                " ORDER BY id DESC LIMIT 1",
                (key,),
            ).fetchone()
            if row is None:
                return None
            alert_id = int(row[0])
            self._db.execute(
                "UPDATE alert SET condition_active = 0, cleared_ns = ?, updated_ns = ? WHERE id = ?",
                (now, now, alert_id),
            )
            self._event(alert_id, now, "clear", ENGINE)
            return self._get(alert_id)

    def acknowledge(self, alert_id: int, who: str, note: str = "", now_ns: int | None = None) -> Alert:
        now = time.time_ns() if now_ns is None else now_ns
        with self._transaction():
            alert = self._get(alert_id)
            if alert.acknowledged:
                raise AlertConflict(f"alert {alert_id} is already acknowledged by {alert.acknowledged_by}")
            self._db.execute(
                "UPDATE alert SET acknowledged = 1, acknowledged_by = ?, acknowledged_ns = ?, updated_ns = ?"
                " WHERE id = ?",
                (who, now, now, alert_id),
            )
            self._event(alert_id, now, "acknowledge", who, note)
            return self._get(alert_id)

    def shelve(
        self, alert_id: int, who: str, duration_s: float, note: str = "", now_ns: int | None = None
    ) -> Alert:
        """Hide the alert until now + duration (ISA-18.2 shelving is always time-limited)."""
        now = time.time_ns() if now_ns is None else now_ns
        until = now + int(duration_s * 1e9)
        with self._transaction():
            alert = self._get(alert_id)
            if alert.state(now) is AlertState.NORMAL:
                raise AlertConflict(f"alert {alert_id} is closed; there is nothing to shelve")
            self._db.execute(
                "UPDATE alert SET shelved_until_ns = ?, shelved_by = ?, updated_ns = ? WHERE id = ?",
                (until, who, now, alert_id),
            )
            self._event(alert_id, now, "shelve", who, note or f"for {duration_s:g} s")
            return self._get(alert_id)

    def unshelve(self, alert_id: int, who: str, now_ns: int | None = None) -> Alert:
        now = time.time_ns() if now_ns is None else now_ns
        with self._transaction():
            alert = self._get(alert_id)
            if alert.state(now) is not AlertState.SHELVED:
                raise AlertConflict(f"alert {alert_id} is not shelved")
            self._db.execute(
                "UPDATE alert SET shelved_until_ns = NULL, shelved_by = NULL, updated_ns = ? WHERE id = ?",
                (now, alert_id),
            )
            self._event(alert_id, now, "unshelve", who)
            return self._get(alert_id)

    def get(self, alert_id: int) -> Alert:
        return self._get(alert_id)

    def _get(self, alert_id: int) -> Alert:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM alert WHERE id = ?", (alert_id,)).fetchone()
        if row is None:
            raise AlertNotFound(f"no alert with id {alert_id}")
        return _alert(row)

    def find(
        self,
        *,
        line: str | None = None,
        machine: str | None = None,
        states: Sequence[AlertState] | None = None,
        limit: int = 100,
        now_ns: int | None = None,
    ) -> list[Alert]:
        """Newest first; ``states`` filters on the derived ISA-18.2 state."""
        now = time.time_ns() if now_ns is None else now_ns
        clauses, params = [], []
        if line is not None:
            clauses.append("line = ?")
            params.append(line)
        if machine is not None:
            clauses.append("machine = ?")
            params.append(machine)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM alert {where} ORDER BY id DESC", params)
        alerts: list[Alert] = []
        for row in rows:
            alert = _alert(row)
            if states is None or alert.state(now) in states:
                alerts.append(alert)
                if len(alerts) >= limit:
                    break
        return alerts

    def events(self, alert_id: int) -> list[AlertEvent]:
        rows = self._db.execute(
            "SELECT alert_id, at_ns, action, who, note FROM alert_event WHERE alert_id = ? ORDER BY rowid",
            (alert_id,),
        )
        return [AlertEvent(*row) for row in rows]

    def raises(self, line: str, since_ns: int, until_ns: int) -> list[tuple[str, int]]:
        """(condition key, time) of every raise of ``line``'s alarms in the window, reactivations too."""
        rows = self._db.execute(
            "SELECT alert.key, alert_event.at_ns FROM alert_event"
            " JOIN alert ON alert.id = alert_event.alert_id"
            " WHERE alert.line = ? AND alert_event.action = 'raise' AND alert_event.at_ns BETWEEN ? AND ?"
            " ORDER BY alert_event.at_ns",
            (line, since_ns, until_ns),
        )
        return [(str(key), int(at)) for key, at in rows]

    def active_raised(self, line: str) -> list[int]:
        """When each of ``line``'s alarms whose condition is active now was raised."""
        rows = self._db.execute(
            "SELECT raised_ns FROM alert WHERE line = ? AND condition_active = 1", (line,)
        )
        return [int(row[0]) for row in rows]

    def active_keys(self, line: str) -> set[str]:
        """Keys whose condition is active, so a restarted engine knows what it must clear."""
        rows = self._db.execute("SELECT key FROM alert WHERE line = ? AND condition_active = 1", (line,))
        return {row[0] for row in rows}


def _alert(row: Sequence[object]) -> Alert:
    values = list(row)
    values[13] = json.loads(str(values[13]))
    values[14] = json.loads(str(values[14]))
    values[17] = bool(values[17])
    values[18] = bool(values[18])
    return Alert(*values)  # type: ignore[arg-type]
