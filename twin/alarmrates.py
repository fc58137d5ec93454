"""The alarm-system figures an operator's alarms are judged by (EEMUA 191, ISA-18.2 / IEC 62682).

From the raise events of the alert log over a window:

- **rate**: alarms raised per 10 minutes, on average over the window (EEMUA 191 asks for about one
  per 10 minutes per operator in steady operation);
- **peak**: the most raised in any 10 minutes;
- **floods**: periods with more than 10 alarms raised in 10 minutes, each counted once however long it
  lasts (ISA-18.2's flood);
- **standing**: alarms whose condition is active now, and of those **stale** ones, active for more than
  24 hours;
- **chattering**: conditions raised 3 or more times within one minute (EEMUA 191's definition).

Written here because these figures are a few lines over the alert log, which no alarm-management
library (they come with DCS historians) reads.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

NS = 1_000_000_000
TEN_MINUTES_NS = 600 * NS
FLOOD_ALARMS = 10  # more than this many in ten minutes is a flood
CHATTER_RAISES = 3
CHATTER_WINDOW_NS = 60 * NS
STALE_NS = 24 * 3600 * NS


@dataclass(frozen=True, slots=True)
class AlarmRates:
    window_s: float
    raised: int
    per_10_min: float
    peak_per_10_min: int
    floods: int
    standing: int
    stale: int
    chattering: list[str] = field(default_factory=list)


def _most_in(times: Sequence[int], width_ns: int) -> int:
    """The most events in any window ``width_ns`` long (``times`` sorted)."""
    return max((bisect_right(times, t + width_ns - 1) - i for i, t in enumerate(times)), default=0)


def _floods(times: Sequence[int]) -> int:
    """Flood periods: runs of time in which some 10-minute window holds more than ``FLOOD_ALARMS``."""
    floods, flood_until = 0, None
    for i, t in enumerate(times):
        if i + FLOOD_ALARMS < len(times) and times[i + FLOOD_ALARMS] < t + TEN_MINUTES_NS:
            if flood_until is None or t > flood_until:
                floods += 1
            flood_until = times[i + FLOOD_ALARMS] + TEN_MINUTES_NS
    return floods


def rates(
    raises: Iterable[tuple[str, int]],
    active_since: Iterable[int],
    since_ns: int,
    until_ns: int,
) -> AlarmRates:
    """The figures over ``[since_ns, until_ns]`` from (condition key, raised at) events and the raise
    times of the alarms active now."""
    by_key: dict[str, list[int]] = defaultdict(list)
    times = []
    for key, at in raises:
        if since_ns <= at <= until_ns:
            by_key[key].append(at)
            times.append(at)
    times.sort()
    window = max(until_ns - since_ns, 1)
    chattering = sorted(
        key for key, ats in by_key.items() if _most_in(sorted(ats), CHATTER_WINDOW_NS) >= CHATTER_RAISES
    )
    active = list(active_since)
    return AlarmRates(
        window_s=window / NS,
        raised=len(times),
        per_10_min=len(times) * TEN_MINUTES_NS / window,
        peak_per_10_min=_most_in(times, TEN_MINUTES_NS),
        floods=_floods(times),
        standing=len(active),
        stale=sum(1 for at in active if until_ns - at > STALE_NS),
        chattering=chattering,
    )
