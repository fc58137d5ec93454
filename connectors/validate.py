"""Edge validation: values and timestamps are judged once, before a Sample is made.

Every check raises ``RejectedInput`` with a short reason that becomes the ``reason`` label of the
rejected counter, so a user sees *why* inputs were refused, not just how many.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from core.errors import RejectedInput
from core.settings import IngestSettings

NS = 1_000_000_000


def number(value: Any) -> float:
    """A finite float from an int or float (bools and strings are the wrong type, not numbers)."""
    if type(value) is float and math.isfinite(value):  # the common case, checked first: hot path
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RejectedInput("wrong_type", f"value {value!r} is not a number")
    result = float(value)
    if not math.isfinite(result):
        raise RejectedInput("non_finite", f"value {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Source timestamps outside [now - max_past_age, now + max_future_skew] are absurd."""

    max_future_skew_ns: int
    max_past_age_ns: int

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> TimeWindow:
        return cls(int(ingest.max_future_skew_s * NS), int(ingest.max_past_age_s * NS))

    def check(self, source_time_ns: int, now_ns: int | None = None) -> int:
        now = time.time_ns() if now_ns is None else now_ns
        if source_time_ns > now + self.max_future_skew_ns:
            raise RejectedInput("future_timestamp", f"{source_time_ns} ns is ahead of the clock")
        if source_time_ns < now - self.max_past_age_ns:
            raise RejectedInput("stale_timestamp", f"{source_time_ns} ns is older than allowed")
        return source_time_ns
