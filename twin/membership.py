"""Which twin worker serves which line, agreed over the plant bus's broker with retained last wills.

Each worker publishes its status, retained at QoS 1, on ``<root>/twin/workers/<worker>``: the lines it
owns (``twin.lines``) and the lines it serves now. It sets that topic's MQTT last will to the same
status marked offline, so when a worker dies the broker announces it: at once after a kill -9 (the
kernel closes its socket), after 1.5 × keepalive on a network cut. A stopping worker publishes it
itself, after its last snapshot.

A standby worker (``twin.standby_lines``) takes over a line when no worker that owns or serves it is
online, restoring the dead worker's snapshot from the shared state file and replaying the rest from
InfluxDB (``twin.catchup``). When the owner comes back it waits until the taker has released the line
(saved its snapshot, status updated), then restores that snapshot: one line, one worker, no sample
judged twice and none skipped.

Written here because MQTT gives the mechanism (retained messages, last wills) and no library puts this
small protocol on it; the rules are pure functions of the statuses seen, so every worker that has seen
the same statuses takes the same decisions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a worker says about itself (or its last will says after it)."""

    worker: str
    online: bool
    owns: frozenset[str] = frozenset()
    serving: frozenset[str] = frozenset()
    standby: frozenset[str] = frozenset()

    def encode(self) -> bytes:
        return json.dumps(
            {
                "worker": self.worker,
                "online": self.online,
                "owns": sorted(self.owns),
                "serving": sorted(self.serving),
                "standby": sorted(self.standby),
            }
        ).encode()

    @classmethod
    def decode(cls, payload: bytes) -> WorkerStatus:
        """ValueError for anything but a status document."""
        try:
            data: Any = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("worker"), str):
            raise ValueError("a worker status needs a worker name")
        lists = [data.get(key, []) for key in ("owns", "serving", "standby")]
        if not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists):
            raise ValueError("owns, serving and standby must be lists of line names")
        owns, serving, standby = (frozenset(v) for v in lists)
        return cls(data["worker"], bool(data.get("online")), owns, serving, standby)


def status_topic(root: str, worker: str) -> str:
    return f"{root}/twin/workers/{worker}"


def status_filter(root: str) -> str:
    return f"{root}/twin/workers/+"


@dataclass
class Membership:
    """The statuses this worker has seen, and what they ask of it."""

    me: str
    owns: frozenset[str]
    standby: frozenset[str]
    others: dict[str, WorkerStatus] = field(default_factory=dict)

    def seen(self, status: WorkerStatus) -> None:
        if status.worker != self.me:
            self.others[status.worker] = status

    def _online(self) -> list[WorkerStatus]:
        return [s for s in self.others.values() if s.online]

    def served_elsewhere(self, line: str) -> bool:
        """Another online worker serves ``line`` now: an owner must wait for its release."""
        return any(line in s.serving for s in self._online())

    def to_adopt(self, serving: set[str]) -> set[str]:
        """Standby lines that no online worker owns or serves, and this one does not serve yet; of several
        online standbys for a line, the first by name takes it."""
        online = self._online()
        cared_for = set().union(*(s.owns | s.serving for s in online))
        first = {line for s in online if s.worker < self.me for line in s.standby}
        return set(self.standby) - cared_for - first - serving - set(self.owns)

    def to_release(self, serving: set[str]) -> set[str]:
        """Lines this worker took over whose owner is online again."""
        owned_elsewhere = set().union(*(s.owns for s in self._online()))
        return (serving - set(self.owns)) & owned_elsewhere
