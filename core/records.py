"""The records models return and the twin serves: one set of types for both sides of that boundary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["data", "prior"]


@dataclass(slots=True, frozen=True)
class ModelOutput:
    """One model value for InfluxDB measurement ``model`` (kind: predicted, residual, statistic, ...)."""

    machine: str
    signal: str
    kind: str
    value: float
    time_ns: int
    sigma: float | None = None


@dataclass(slots=True, frozen=True)
class Parameter:
    """A calibrated model parameter with its standard uncertainty (None when it has none, as a screening
    limit); ``source`` is "prior" where the line's data could not identify it (a domain value)."""

    machine: str
    name: str
    value: float
    sigma: float | None
    unit: str = ""
    source: Source = "data"
