"""What a what-if answers: one set of records for the models that make them and the twin that serves them.

σ is the standard uncertainty of one reading of the quality once the line has settled: the model part
(parameters, priors included) and the reading noise combined; the interval is value ± ``COVERAGE_Z``·σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COVERAGE_Z = 2.0  # about 95 % for a Gaussian reading


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted quality: its value, σ split into model and noise, the inputs it extrapolates on (each
    outside the range the model was calibrated on, named), and the spec limits it is judged against."""

    quantity: str
    value: float
    sigma_model: float
    sigma_noise: float
    unit: str
    lower_spec: float | None = None
    upper_spec: float | None = None
    extrapolated: tuple[str, ...] = ()

    @property
    def sigma(self) -> float:
        return math.hypot(self.sigma_model, self.sigma_noise)

    @property
    def interval(self) -> tuple[float, float]:
        return self.value - COVERAGE_Z * self.sigma, self.value + COVERAGE_Z * self.sigma


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A quantity that cannot be predicted now, and why (a model calibrating, an input never reported)."""

    quantity: str
    reason: str


@dataclass(slots=True)
class Answer:
    predictions: list[Prediction] = field(default_factory=list)
    unavailable: list[Unavailable] = field(default_factory=list)

    def values(self) -> dict[str, float]:
        return {p.quantity: p.value for p in self.predictions}


@dataclass(frozen=True, slots=True)
class Input:
    """A what-if input of a line: the signal its current value is read from (a setpoint, or the value
    itself), its unit, the limits a writable setpoint has (None where the line sets none) and its value."""

    name: str
    machine: str
    signal: str
    unit: str
    setpoint: bool
    low: float | None = None
    high: float | None = None
    current: float | None = None


@dataclass(frozen=True, slots=True)
class Quantity:
    """A quality a line's what-if predicts: the measured signal it is read as, its unit and spec limits."""

    name: str
    machine: str
    signal: str
    unit: str
    lower_spec: float | None = None
    upper_spec: float | None = None


@dataclass(slots=True)
class Catalogue:
    """What a line's what-if takes and answers; requests are checked against it before any model runs."""

    inputs: list[Input] = field(default_factory=list)
    quantities: list[Quantity] = field(default_factory=list)

    def check(self, setpoints: dict[str, float]) -> None:
        """ValueError naming the first unknown input, or a setpoint outside its limits."""
        known = {i.name: i for i in self.inputs}
        unknown = sorted(set(setpoints) - set(known))
        if unknown:
            raise ValueError(
                f"unknown setpoint(s) {', '.join(unknown)}; this line's are {', '.join(known) or 'none'}"
            )
        for name, value in setpoints.items():
            limits = known[name]
            if limits.low is not None and limits.high is not None and not limits.low <= value <= limits.high:
                raise ValueError(
                    f"{name} = {value} is outside {limits.machine} {limits.signal}'s limits {limits.low} to "
                    f"{limits.high} {limits.unit}"
                )

    def check_quantities(self, names: list[str]) -> None:
        known = [q.name for q in self.quantities]
        unknown = sorted(set(names) - set(known))
        if unknown:
            raise ValueError(
                f"unknown quantity(ies) {', '.join(unknown)}; this line's are {', '.join(known) or 'none'}"
            )
