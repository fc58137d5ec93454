"""Scrap risk: the share of product expected outside its spec limits if the line runs on as it is.

Estimated from the recent measurements of a quality characteristic (a rolling window of the last
``window`` values) as a normal process: P(x < LSL) + P(x > USL) with the window's mean and standard
deviation. This is the process-capability reading (the tail beyond the limits that Cpk summarises),
which an operator can check against the chart: a drift toward a limit raises it long before the first
value is out.

>>> risk = ScrapRisk(window=100)
>>> for value in [19.9, 20.0, 20.1] * 30:
...     risk.update(value)
>>> round(risk.risk(19.6, 20.4), 4)
0.0
>>> for value in [20.35, 20.4, 20.45] * 40:
...     risk.update(value)
>>> round(risk.risk(19.6, 20.4), 2)
0.5
"""

from __future__ import annotations

import math
from collections import deque

MIN_VALUES = 10


class ScrapRisk:
    """Rolling estimate of the out-of-spec share of one quality characteristic."""

    def __init__(self, window: int = 300) -> None:
        self.values: deque[float] = deque(maxlen=window)

    def update(self, value: float) -> None:
        if math.isfinite(value):
            self.values.append(value)

    def risk(self, lower: float, upper: float) -> float | None:
        """P(outside [lower, upper]); None until ``MIN_VALUES`` values were seen."""
        n = len(self.values)
        if n < MIN_VALUES:
            return None
        mean = sum(self.values) / n
        sigma = math.sqrt(sum((v - mean) ** 2 for v in self.values) / (n - 1))
        if sigma == 0.0:
            return 0.0 if lower <= mean <= upper else 1.0
        return _normal_cdf((lower - mean) / sigma) + 1.0 - _normal_cdf((upper - mean) / sigma)


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))
