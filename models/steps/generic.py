"""Any step kind the twin has no physics for: each signal's level on its own, and all of them together.

A step still counts when no one has written its model: every signal its description lists (setpoints
and roll positions aside) gets a drift detector on its level, calibrated like the physics features (the
two-scale chart of ``models.levelchart`` by default, or with ``models.detector = "cusum"`` the CUSUM
prewhitened by an AR model with its limit from held-out in-control data, ``models.prewhitened``: a raw
signal carries the plant's autocorrelated disturbances), and the signals together get the PCA T²/SPE
monitor. A finding names the
signal that moved; its cause is ``signal_drift``, since without a model nothing says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from models.prewhitened import ARCUSUM
from models.steps.base import StepSpec, TickStep, Values

# a setpoint is what the operator chose, a position where on the roll: neither has an in-control level
UNMONITORED = ("setpoint", "position")


class GenericStep(TickStep):
    kind: ClassVar[str] = "generic"

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        self.monitored = sorted(r for r in spec.roles if not r.endswith(UNMONITORED))
        self.feature_units = dict(spec.units)

    def new_detector(self, name: str, series: np.ndarray) -> Any:
        if self.tuning.detector in ("cusum", "arcusum"):
            return ARCUSUM.calibrated(series, self.tuning.arl0)
        return super().new_detector(name, series)

    def fit(self, buffer: Sequence[tuple[int, Values]]) -> None:
        del buffer

    def features(self, values: Values) -> Values:
        names = self.monitored or sorted(n for n in values if not n.endswith(UNMONITORED))
        return {name: values.get(name, float("nan")) for name in names}

    def classify(self, moving: set[str], feature: str, magnitude: float) -> tuple[str, str, float] | None:
        del moving, magnitude
        return "signal_drift", feature, 0.5

    def physics_state(self) -> dict[str, Any]:
        return {}

    def load_physics(self, state: Mapping[str, Any]) -> None:
        del state
