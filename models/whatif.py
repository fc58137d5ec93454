"""What-if on the calibrated models: setpoints in, predicted quality with an honest interval out, and the
inverse.

Forward: coater mass balance (delivered flow = learnt pump efficiency × setpoint) → dry loading →
calender compaction → porosity and thickness → cell capacity from loading. Each quantity is answered on
its own: one that cannot be predicted (its machine still calibrating, an input never reported) is listed
with the reason, and the others are still given.

σ is the standard uncertainty of one reading of the quality once the line has settled at the setpoints:
- ``sigma_model``: the parameters' uncertainty, priors included, propagated to first order. Where a law's
  parameter is a prior (ε₀, ε_min, β of the compaction law at one line load and roll temperature), the
  law is anchored at the calibrated operating point, so this part is small there and grows with the
  distance from it (``models.compaction.anchored``);
- ``sigma_noise``: the in-control scatter of a reading at a steady operating point: the robust σ of the
  measured quality during calibration (of the calibration cells' capacity for cells).
An input outside the range it took during calibration is named in ``extrapolated``. The records are
``core.prediction``'s, shared with the twin.

Inverse: bounded nonlinear least squares (scipy ``least_squares``, dogbox) on the forward model, each miss
scaled by its spec tolerance, with a small pull towards the current operating point so that free
setpoints stay where they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from core.errors import LinetwinError
from core.prediction import Answer, Prediction, Unavailable
from models.line import CALENDER, COATER, CYCLER, LineModel

# what-if name -> (machine, the machine's signal that holds its current value)
SETPOINT_SIGNALS = {
    "pump_flow": (COATER, "pump_flow_setpoint"),
    "web_speed": (COATER, "web_speed_setpoint"),
    "coating_width": (COATER, "coating_width"),
    "slurry_density": (COATER, "slurry_density"),
    "slurry_solids": (COATER, "slurry_solids"),
    "dryer_zone1_temperature": (COATER, "dryer_zone1_setpoint"),
    "dryer_zone2_temperature": (COATER, "dryer_zone2_setpoint"),
    "dryer_zone3_temperature": (COATER, "dryer_zone3_setpoint"),
    "line_load": (CALENDER, "line_load_setpoint"),
    "roll_temperature": (CALENDER, "roll_temperature_setpoint"),
}
SETPOINTS = tuple(SETPOINT_SIGNALS)
SPEC_TOLERANCE = {
    "dry_loading": 0.02,
    "thickness": 0.03,
    "porosity": 0.05,
    "cell_capacity": 0.02,
}  # ± of recipe
# quantity -> the measured signal whose in-control scatter at a steady operating point is a reading's noise
MEASURED = {
    "dry_loading": (COATER, "dry_loading"),
    "residual_solvent": (COATER, "residual_solvent"),
    "porosity": (CALENDER, "porosity"),
    "thickness": (CALENDER, "thickness"),
}
UNITS = {
    "dry_loading": "mg/cm2",
    "residual_solvent": "%",
    "porosity": "%",
    "thickness": "um",
    "cell_capacity": "Ah",
}
QUANTITIES = tuple(UNITS)
ZONES = ("dryer_zone1_temperature", "dryer_zone2_temperature", "dryer_zone3_temperature")


class WhatIfError(LinetwinError):
    """A what-if request the models cannot answer (nothing calibrated yet, unknown name)."""


@dataclass(frozen=True, slots=True)
class _Value:
    value: float
    sigma_model: float
    sigma_noise: float
    extrapolated: tuple[str, ...]


Step = Callable[[dict[str, float], dict[str, "_Value | str"]], dict[str, "_Value"]]


class _Missing(Exception):
    """Raised inside the forward model: this quantity cannot be predicted, for this reason."""


class WhatIf:
    """Forward and inverse what-if on a ``LineModel``; the operating point is its last tick."""

    def __init__(self, model: LineModel) -> None:
        if not any(model.calibrated.values()):
            raise WhatIfError(
                "every model is still calibrating: "
                + "; ".join(f"{m} {model.calibration_progress(m)}" for m in model.calibrated)
            )
        self.model = model
        self.base = {
            name: float(model.current.get(machine, {}).get(signal, math.nan))
            for name, (machine, signal) in SETPOINT_SIGNALS.items()
        }
        recipe = self._forward(self.base)
        self.specs = {
            q: (v.value * (1 - SPEC_TOLERANCE[q]), v.value * (1 + SPEC_TOLERANCE[q]))
            for q, v in recipe.items()
            if q in SPEC_TOLERANCE and isinstance(v, _Value)
        }

    # ------------------------------------------------------------------ forward
    def _forward(self, setpoints: Mapping[str, float]) -> dict[str, _Value | str]:
        """Each quantity's value, or the reason it has none, in the order of the material flow."""
        s = {**self.base, **setpoints}
        out: dict[str, _Value | str] = {}
        steps: list[tuple[tuple[str, ...], Step]] = [
            (("dry_loading",), self._loading),
            (("residual_solvent",), self._solvent),
            (("porosity", "thickness"), self._calender),
            (("cell_capacity",), self._capacity),
        ]
        for quantities, step in steps:
            try:
                out.update(step(s, out))
            except _Missing as missing:
                out.update(dict.fromkeys(quantities, str(missing)))
        return out

    def _need(self, machine: str, s: Mapping[str, float], *names: str) -> None:
        if not self.model.calibrated[machine]:
            raise _Missing(f"{machine} model calibrating: {self.model.calibration_progress(machine)}")
        for name in names:
            if not math.isfinite(s[name]):
                held_in = SETPOINT_SIGNALS[name]
                raise _Missing(f"no value for {held_in[0]} {held_in[1]} yet")

    def _upstream(self, out: Mapping[str, _Value | str], quantity: str) -> _Value:
        found = out[quantity]
        if isinstance(found, str):
            raise _Missing(f"needs {quantity}: {found}")
        return found

    def _extrapolated(self, machine: str, inputs: Mapping[str, float]) -> tuple[str, ...]:
        ranges = self.model.ranges.get(machine, {})
        outside = []
        for name, value in inputs.items():
            if name in ranges and not ranges[name][0] <= value <= ranges[name][1]:
                low, high = ranges[name]
                outside.append(f"{machine} {name} {value:.4g} outside the calibrated {low:.4g} to {high:.4g}")
        return tuple(outside)

    def _noise(self, quantity: str) -> float:
        machine, signal = MEASURED[quantity]
        sigma = self.model.scatter.get(machine, {}).get(signal, math.nan)
        return sigma if math.isfinite(sigma) else 0.0

    def _coater_inputs(self, s: Mapping[str, float]) -> dict[str, float]:
        flow = float(self.model.coater.pump.theta[0]) * s["pump_flow"]
        return {**s, "pump_flow": flow}

    def _loading(self, s: dict[str, float], _out: Mapping[str, _Value | str]) -> dict[str, _Value]:
        self._need(COATER, s, "pump_flow", "web_speed", "coating_width", "slurry_density", "slurry_solids")
        inputs = self._coater_inputs(s)
        value, sigma = self.model.coater.predict(inputs)
        used = {k: inputs[k] for k in self.model.coater.inputs}
        return {
            "dry_loading": _Value(value, sigma, self._noise("dry_loading"), self._extrapolated(COATER, used))
        }

    def _solvent(self, s: dict[str, float], _out: Mapping[str, _Value | str]) -> dict[str, _Value]:
        self._need(COATER, s, "web_speed", *ZONES)
        inputs = self._coater_inputs(s)
        value, sigma = self.model.dryer.predict(inputs)
        used = {k: inputs[k] for k in (*ZONES, "web_speed")}
        noise = self._noise("residual_solvent")
        return {"residual_solvent": _Value(value, sigma, noise, self._extrapolated(COATER, used))}

    def _calender(self, s: dict[str, float], out: Mapping[str, _Value | str]) -> dict[str, _Value]:
        self._need(CALENDER, s, "line_load", "roll_temperature")
        loading = self._upstream(out, "dry_loading")
        inputs = {
            "line_load": s["line_load"],
            "roll_temperature": s["roll_temperature"],
            "incoming_loading": loading.value,
        }
        predicted = self.model.calender.predict(inputs)
        outside = self._extrapolated(CALENDER, inputs) + loading.extrapolated
        porosity, porosity_sigma = predicted["porosity"]
        thickness, thickness_sigma = predicted["thickness"]
        share = thickness / loading.value  # thickness follows the incoming loading in proportion
        return {
            "porosity": _Value(porosity, porosity_sigma, self._noise("porosity"), outside),
            "thickness": _Value(
                thickness,
                math.hypot(thickness_sigma, share * loading.sigma_model),
                self._noise("thickness"),
                outside,
            ),
        }

    def _capacity(self, s: dict[str, float], out: Mapping[str, _Value | str]) -> dict[str, _Value]:
        if not self.model.calibrated[CYCLER]:
            raise _Missing(f"cell model calibrating: {self.model.calibration_progress(CYCLER)}")
        loading = self._upstream(out, "dry_loading")
        formation = self.model.formation
        capacity, capacity_sigma = formation.predict(loading.value)
        gain = float(formation.capacity.theta[0])
        noise = self.model.cell_ref[2]  # the calibration cells' robust σ of capacity
        return {
            "cell_capacity": _Value(
                capacity,
                math.hypot(capacity_sigma, gain * loading.sigma_model),
                noise if math.isfinite(noise) else 0.0,
                loading.extrapolated,
            )
        }

    # ------------------------------------------------------------------ answers
    def predict(self, setpoints: Mapping[str, float]) -> Answer:
        """Every quality the models can predict for these setpoints, and why the others cannot be."""
        unknown = set(setpoints) - set(SETPOINTS)
        if unknown:
            raise WhatIfError(
                f"unknown setpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(SETPOINTS)}"
            )
        answer = Answer()
        for quantity, found in self._forward(setpoints).items():
            if isinstance(found, str):
                answer.unavailable.append(Unavailable(quantity, found))
            elif not (math.isfinite(found.value) and math.isfinite(found.sigma_model)):
                answer.unavailable.append(Unavailable(quantity, "the model gives no finite value here"))
            else:
                low, high = self.specs.get(quantity, (None, None))
                answer.predictions.append(
                    Prediction(
                        quantity,
                        found.value,
                        found.sigma_model,
                        found.sigma_noise,
                        UNITS[quantity],
                        low,
                        high,
                        found.extrapolated,
                    )
                )
        return answer

    def inverse(
        self, targets: Mapping[str, float], bounds: Mapping[str, tuple[float, float]] | None = None
    ) -> dict[str, float]:
        """Setpoints within ``bounds`` (default: ±20 % of the current ones for flow, speed, load and roll
        temperature) whose predictions come closest to ``targets``, each weighted by its spec tolerance."""
        names = list(bounds) if bounds else ["pump_flow", "web_speed", "line_load", "roll_temperature"]
        unknown = [n for n in names if n not in SETPOINTS]
        unnamed = [q for q in targets if q not in QUANTITIES]
        if unknown or unnamed:
            raise WhatIfError(f"unknown setpoint(s) {unknown} or quantity(ies) {unnamed}")
        now = self.predict({})
        reasons = {u.quantity: u.reason for u in now.unavailable}
        blocked = [f"{q}: {reasons[q]}" for q in targets if q in reasons]
        if blocked:
            raise WhatIfError("cannot aim at " + "; ".join(blocked))
        missing = [n for n in names if not math.isfinite(self.base[n]) and not bounds]
        if missing:
            raise WhatIfError(f"no current value of {', '.join(missing)} to move from; give bounds")
        limits = [bounds[n] if bounds else (0.8 * self.base[n], 1.2 * self.base[n]) for n in names]
        scale = {q: (self.specs[q][1] - self.specs[q][0]) / 2 if q in self.specs else 0.05 for q in targets}
        start = np.array(
            [
                min(max(self.base[n], lo), hi) if math.isfinite(self.base[n]) else (lo + hi) / 2
                for n, (lo, hi) in zip(names, limits, strict=True)
            ]
        )
        span = np.array([max(hi - lo, 1e-9) for lo, hi in limits])

        def residuals(u: np.ndarray) -> np.ndarray:
            predicted = self._forward(dict(zip(names, start + u * span, strict=True)))
            misses = []
            for q, t in targets.items():
                found = predicted[q]
                value = found.value if isinstance(found, _Value) else math.nan
                misses.append((value - t) / scale[q] if math.isfinite(value) else 1e6)
            return np.r_[misses, 0.01 * u]

        low = np.array([(lo - s0) / sp for (lo, _), s0, sp in zip(limits, start, span, strict=True)])
        high = np.array([(hi - s0) / sp for (_, hi), s0, sp in zip(limits, start, span, strict=True)])
        result = optimize.least_squares(residuals, np.zeros(len(names)), bounds=(low, high), method="dogbox")
        return {n: float(v) for n, v in zip(names, start + result.x * span, strict=True)}
