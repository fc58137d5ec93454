"""What the twin needs from the models, as small protocols, so the engine runs and is tested without them.

``twin/modeladapter.py`` fits ``models/`` to these; unit tests use fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import LinetwinError
from core.prediction import Answer, Catalogue
from core.records import ModelOutput, Parameter
from core.sample import Sample
from twin.alerts import Occurrence


@dataclass(slots=True)
class Verdict:
    """What the models made of a batch of samples."""

    outputs: list[ModelOutput] = field(default_factory=list)
    occurrences: list[Occurrence] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)


class Analyser(Protocol):
    """A line's models and detectors, fed in sample order; one instance per line."""

    def observe(self, samples: Sequence[Sample]) -> Verdict: ...

    def hold(self, samples: Sequence[Sample]) -> None:
        """Know these last values (from the database) without judging them: a first start mid-run."""

    def parameters(self) -> list[Parameter]: ...

    def status(self, time_ns: int) -> list[ModelOutput]:
        """What operators chart between ticks: parameters, spec limits and scrap risk at ``time_ns``."""

    def snapshot(self) -> bytes: ...

    def restore(self, blob: bytes) -> None: ...

    def step_models(self) -> dict[str, tuple[str, bool]]:
        """Step -> (the model class that judges it, whether it is calibrated), for FAIR metadata."""

    def frozen(self) -> list[tuple[str, str, int]]:
        """(machine, signal, since) of each value the models withhold as frozen (``models.stale``)."""

    def unresolved_levels(self) -> list[tuple[str, str, int]]:
        """(machine, feature, since) of each feature whose level the calibration could not resolve: it
        wanders on a scale the calibration period was too short to know (``models.levelchart``)."""

    def rebaseline(self, step: str) -> list[str]:
        """Recalibrate ``step`` from fresh in-control data (ValueError for an unknown step); returns the
        condition keys of that step, which no longer stand."""


class WhatIfUnavailable(LinetwinError):
    """The models cannot answer yet (still calibrating) or cannot answer this question."""


class WhatIf(Protocol):
    """Forward and inverse what-if on a line's calibrated models; unknown names raise ValueError."""

    def catalogue(self, line: str) -> Catalogue:
        """The line's what-if inputs (with their limits and current values) and quantities."""

    def predict(self, line: str, setpoints: Mapping[str, float]) -> Answer:
        """What can be predicted, and for the rest why not; ``WhatIfUnavailable`` when nothing can."""

    def inverse(
        self, line: str, targets: Mapping[str, float], bounds: Mapping[str, tuple[float, float]]
    ) -> dict[str, float]: ...
