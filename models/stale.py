"""Frozen sensors: a value that stops changing is no reading, even while its quality says Good.

A transmitter that hangs, a gateway that repeats its last value or a PLC holding a register report the
same number again and again, and a chart fed with it accumulates that one deviation tick after tick: a
frozen zone thermocouple 1 σ off its setpoint raises a CUSUM alarm within two minutes. Over OPC UA a
frozen value sends no data change and simply goes missing; replayed from a table, or through a gateway
that republishes, it repeats. Either way the twin must not judge a step on it.

``Freeze`` learns, per signal, how long runs of exactly repeated values are in control (a quantised
signal repeats often, a noisy analogue one almost never) and from then on withholds a value that has
repeated for longer than ``FACTOR`` × that (at least ``MIN_TICKS``), from the tick it became stale until
it changes. Signals constant during calibration (setpoints, recipe values) are never stale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MIN_TICKS = 5
FACTOR = 3.0
RUN_QUANTILE = 99.0  # a frozen episode in the calibration period is one run among thousands


def repeat_runs(series: Sequence[float]) -> list[int]:
    """Lengths of the runs of exactly equal consecutive finite values (1 for a value that changed)."""
    runs: list[int] = []
    previous = math.nan
    for value in series:
        if not math.isfinite(value):
            previous = math.nan
            continue
        if value == previous:
            runs[-1] += 1
        else:
            runs.append(1)
        previous = value
    return runs


class Freeze:
    """Withholds each signal's values while they are frozen (see module)."""

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        #: signal -> repeats beyond which its value is stale
        self.limits = dict(limits or {})
        self.last: dict[str, float] = {}
        self.repeats: dict[str, int] = {}
        self.run_start_ns: dict[str, int] = {}
        #: signal -> plant time its value froze (the first of its repeats), while it is withheld
        self.since_ns: dict[str, int] = {}

    @classmethod
    def learnt(cls, buffer: Sequence[tuple[int, Mapping[str, float]]]) -> Freeze:
        """Limits from a calibration buffer; signals that never changed get none."""
        names = {name for _, values in buffer for name in values}
        limits = {}
        for name in names:
            runs = repeat_runs([values.get(name, math.nan) for _, values in buffer])
            if len(runs) > 1:
                typical = float(np.percentile(runs, RUN_QUANTILE))
                limits[name] = max(MIN_TICKS, math.ceil(FACTOR * typical))
        return cls(limits)

    def clean(self, buffer: Sequence[tuple[int, Mapping[str, float]]]) -> list[tuple[int, dict[str, float]]]:
        """The buffer with its frozen stretches left out, as they would have been live; the state then
        continues from its end."""
        return [(t, self.mask(t, values)) for t, values in buffer]

    def mask(self, time_ns: int, values: Mapping[str, float]) -> dict[str, float]:
        """``values`` without the signals frozen now."""
        out = dict(values)
        for name, limit in self.limits.items():
            value = values.get(name)
            if value is None or not math.isfinite(value):
                continue
            if value == self.last.get(name):
                self.repeats[name] = self.repeats.get(name, 1) + 1
            else:
                self.last[name], self.repeats[name] = value, 1
                self.run_start_ns[name] = time_ns
                self.since_ns.pop(name, None)
            if self.repeats[name] > limit:
                self.since_ns.setdefault(name, self.run_start_ns.get(name, time_ns))
                del out[name]
        return out

    def state(self) -> dict[str, Any]:
        return {
            "limits": self.limits,
            "last": self.last,
            "repeats": self.repeats,
            "run_start_ns": self.run_start_ns,
            "since_ns": self.since_ns,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Freeze:
        freeze = cls(state["limits"])
        freeze.last = dict(state["last"])
        freeze.repeats = dict(state["repeats"])
        freeze.run_start_ns = dict(state["run_start_ns"])
        freeze.since_ns = dict(state["since_ns"])
        return freeze
