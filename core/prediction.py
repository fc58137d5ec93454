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
