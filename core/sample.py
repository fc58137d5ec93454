"""The one normalised sample shared by connectors, storage, the plant bus and the twin.

A slotted dataclass rather than a pydantic model: connectors build tens of thousands per second and
validation happens once, at the connector edge, before a Sample is made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Quality(enum.StrEnum):
    """OPC UA StatusCode severity folded to three levels (Part 4, 7.39: bits 30-31)."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"

    @classmethod
    def from_status_code(cls, value: int) -> Quality:
        severity = (value >> 30) & 0b11
        if severity == 0:
            return cls.GOOD
        if severity == 1:
            return cls.UNCERTAIN
        return cls.BAD


@dataclass(slots=True, frozen=True)
class Sample:
    """One measured value with its unit, time, quality and lineage."""

    line: str
    machine: str
    signal: str
    value: float
    unit: str
    source_time_ns: int
    receive_time_ns: int
    quality: Quality = Quality.GOOD
    source: str = ""
    seq: int | None = None
    channel: str | None = None
    roll_id: str | None = None
    cell_id: str | None = None
    #: the unit the source sent, when ingest converted the value into ``unit``; None when it did not
    source_unit: str | None = None
