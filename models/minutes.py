"""What each feature averaged, block by block, over the model's memory: what root cause looks back on.

When a chart alarms, the step asks which of its features have moved since the estimated onset
(``TickStep._moving``). Keeping every tick's features for an hour would make each snapshot a megabyte
of JSON, written every few seconds; without them a restored model classifies its first alarms on less
than the model that never stopped. Sums and counts per one-minute block (``models.levelchart.BLOCK_S``)
are enough for a mean since any onset to within a block, and an hour of them is a few kilobytes.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

from models.levelchart import BLOCK_S

Totals = dict[str, list[float]]  # feature -> [sum, count]


class MinuteMeans:
    """Per-block sums and counts of finite feature values over the last ``span_s`` (see module)."""

    def __init__(self, span_s: float, block_s: float = BLOCK_S) -> None:
        self.block_ns = int(block_s * 1e9)
        self.blocks: deque[tuple[int, Totals]] = deque(maxlen=max(1, math.ceil(span_s / block_s)))
        self.start_ns: int | None = None
        self.current: Totals = {}

    def add(self, time_ns: int, features: Mapping[str, float]) -> None:
        """One tick's features; a block closes with the first tick at least ``block_s`` after its start."""
        if self.start_ns is None:
            self.start_ns = time_ns
        elif time_ns - self.start_ns >= self.block_ns:
            self.blocks.append((time_ns, self.current))
            self.current, self.start_ns = {}, time_ns
        for name, value in features.items():
            if math.isfinite(value):
                total = self.current.setdefault(name, [0.0, 0.0])
                total[0] += value
                total[1] += 1

    def means_since(self, since_ns: int) -> dict[str, tuple[float, int]]:
        """(mean, count) of each feature over the blocks that end after ``since_ns`` and the open one."""
        totals: Totals = {}
        chosen = [t for end, t in self.blocks if end > since_ns] + [self.current]
        for block in chosen:
            for name, (total, count) in block.items():
                seen = totals.setdefault(name, [0.0, 0.0])
                seen[0] += total
                seen[1] += count
        return {name: (total / count, int(count)) for name, (total, count) in totals.items() if count}

    def state(self) -> dict[str, Any]:
        return {"blocks": list(self.blocks), "start_ns": self.start_ns, "current": self.current}

    def load(self, state: Mapping[str, Any]) -> None:
        self.blocks.extend((int(end), {k: list(v) for k, v in t.items()}) for end, t in state["blocks"])
        self.start_ns = state["start_ns"]
        self.current = {k: list(v) for k, v in state["current"].items()}
