"""What-if on the calibrated models: setpoints in, predicted quality with uncertainty out, and the inverse.

Forward: coater mass balance (delivered flow = learnt pump efficiency × setpoint) → dry loading →
calender compaction → porosity and thickness → cell capacity from loading; uncertainties propagate the
RLS parameter covariances to first order. Inverse: bounded nonlinear least squares (scipy
``least_squares``, dogbox) on the forward model, each miss scaled by its spec tolerance, with a small
pull towards the current operating point so that free setpoints stay where they are.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from core.errors import LinetwinError
from models.line import CALENDER, COATER, LineModel

SETPOINTS = (
    "pump_flow",
    "web_speed",
    "coating_width",
    "slurry_density",
    "slurry_solids",
    "dryer_zone1_temperature",
    "dryer_zone2_temperature",
    "dryer_zone3_temperature",
    "line_load",
    "roll_temperature",
)
SPEC_TOLERANCE = {
    "dry_loading": 0.02,
    "thickness": 0.03,
    "porosity": 0.05,
    "cell_capacity": 0.02,
}  # ± of recipe


class WhatIfError(LinetwinError):
    """A what-if request the models cannot answer (not calibrated yet, unknown name)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """A predicted quality with its uncertainty against the spec limits (± tolerance around recipe)."""

    quantity: str
    value: float
    sigma: float
    unit: str
    lower_spec: float | None = None
    upper_spec: float | None = None


class WhatIf:
    """Forward and inverse what-if on a calibrated ``LineModel``; the operating point is its last tick."""

    def __init__(self, model: LineModel) -> None:
        if not (model.calibrated[COATER] and model.calibrated[CALENDER]):
            raise WhatIfError("the coater and calender models are still calibrating")
        self.model = model
        coater, calender = model.current[COATER], model.current[CALENDER]
        self.base = {
            "pump_flow": coater.get("pump_flow_setpoint", math.nan),
            "web_speed": coater.get("web_speed_setpoint", math.nan),
            "coating_width": coater.get("coating_width", math.nan),
            "slurry_density": coater.get("slurry_density", math.nan),
            "slurry_solids": coater.get("slurry_solids", math.nan),
            **{
                f"dryer_zone{z}_temperature": coater.get(f"dryer_zone{z}_setpoint", math.nan)
                for z in (1, 2, 3)
            },
            "line_load": calender.get("line_load_setpoint", math.nan),
            "roll_temperature": calender.get("roll_temperature_setpoint", math.nan),
        }
        recipe = self._forward(self.base)
        self.specs = {
            q: (v * (1 - SPEC_TOLERANCE[q]), v * (1 + SPEC_TOLERANCE[q]))
            for q, (v, _, _) in recipe.items()
            if q in SPEC_TOLERANCE
        }

    def _forward(self, setpoints: Mapping[str, float]) -> dict[str, tuple[float, float, str]]:
        s = {**self.base, **setpoints}
        model = self.model
        flow = float(model.coater.pump.theta[0]) * s["pump_flow"]
        coater_values = {**s, "pump_flow": flow}
        loading, loading_sigma = model.coater.predict(coater_values)
        solvent, solvent_sigma = model.dryer.predict(coater_values)
        calender_values = {
            "line_load": s["line_load"],
            "roll_temperature": s["roll_temperature"],
            "incoming_loading": loading,
        }
        calender = model.calender.predict(calender_values)
        porosity, porosity_sigma = calender["porosity"]
        thickness, thickness_sigma = calender["thickness"]
        thickness_sigma = math.hypot(thickness_sigma, thickness * loading_sigma / loading)
        out = {
            "dry_loading": (loading, loading_sigma, "mg/cm2"),
            "residual_solvent": (solvent, solvent_sigma, "%"),
            "porosity": (porosity, porosity_sigma, "%"),
            "thickness": (thickness, thickness_sigma, "um"),
        }
        if model.calibrated["cycler1"]:
            capacity, capacity_sigma = model.formation.predict(loading)
            gain = float(model.formation.capacity.theta[0])
            out["cell_capacity"] = (capacity, math.hypot(capacity_sigma, gain * loading_sigma), "Ah")
        return out

    def predict(self, setpoints: Mapping[str, float]) -> list[Prediction]:
        """Predicted dry loading, residual solvent, porosity, thickness and cell capacity."""
        unknown = set(setpoints) - set(SETPOINTS)
        if unknown:
            raise WhatIfError(
                f"unknown setpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(SETPOINTS)}"
            )
        predictions = []
        for quantity, (value, sigma, unit) in self._forward(setpoints).items():
            low, high = self.specs.get(quantity, (None, None))
            predictions.append(Prediction(quantity, value, sigma, unit, low, high))
        return predictions

    def inverse(
        self, targets: Mapping[str, float], bounds: Mapping[str, tuple[float, float]] | None = None
    ) -> dict[str, float]:
        """Setpoints within ``bounds`` (default: ±20 % of the current ones for flow, speed, load and roll
        temperature) whose predictions come closest to ``targets``, each weighted by its spec tolerance."""
        names = list(bounds) if bounds else ["pump_flow", "web_speed", "line_load", "roll_temperature"]
        unknown = [n for n in names if n not in SETPOINTS]
        missing = [q for q in targets if q not in self.specs and q != "residual_solvent"]
        if unknown or missing:
            raise WhatIfError(f"unknown setpoint(s) {unknown} or quantity(ies) {missing}")
        limits = [bounds[n] if bounds else (0.8 * self.base[n], 1.2 * self.base[n]) for n in names]
        scale = {q: (self.specs[q][1] - self.specs[q][0]) / 2 if q in self.specs else 0.05 for q in targets}
        start = np.array([min(max(self.base[n], lo), hi) for n, (lo, hi) in zip(names, limits, strict=True)])
        span = np.array([max(hi - lo, 1e-9) for lo, hi in limits])

        def residuals(u: np.ndarray) -> np.ndarray:
            predicted = self._forward(dict(zip(names, start + u * span, strict=True)))
            misses = [(predicted[q][0] - t) / scale[q] for q, t in targets.items()]
            return np.r_[misses, 0.01 * u]

        low = np.array([(lo - s0) / sp for (lo, _), s0, sp in zip(limits, start, span, strict=True)])
        high = np.array([(hi - s0) / sp for (_, hi), s0, sp in zip(limits, start, span, strict=True)])
        result = optimize.least_squares(residuals, np.zeros(len(names)), bounds=(low, high), method="dogbox")
        return {n: float(v) for n, v in zip(names, start + result.x * span, strict=True)}
