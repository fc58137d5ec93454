"""What-if on the calibrated models: setpoints in, predicted quality with an honest interval out, and the
inverse.

Forward: each step model that forecasts (``StepModel.forecast``) is asked in the order of the line's
material flow, and a step that builds on an upstream quantity gets the nearest upstream step's forecast
of it: coater mass balance (delivered flow = learnt pump efficiency × setpoint) → dry loading → calender
compaction → porosity and thickness → cell capacity from loading. Each quantity is answered on its own:
one that cannot be predicted (its step still calibrating, an input never reported) is listed with the
reason, and the others are still given.

Names: a what-if input is its role (``pump_flow``) and a quantity its name (``dry_loading``); on a line
with two steps of one kind both are qualified by the step (``<step>.pump_flow``). Values are in the
units the line stores the signal in, converted to and from the kind's units.

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
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from core.errors import LinetwinError
from core.prediction import Answer, Prediction, Unavailable
from models.line import LineModel
from models.steps.base import Forecast, StepModel, Unpredictable


class WhatIfError(LinetwinError):
    """A what-if request the models cannot answer (nothing calibrated yet, unknown name)."""


@dataclass(frozen=True, slots=True)
class _Input:
    step: StepModel
    role: str  # the input the step's forecast takes
    held: str  # the role whose current value it starts from


@dataclass(frozen=True, slots=True)
class _Quantity:
    step: StepModel
    name: str  # the step's quantity
    measured: str  # the role it is read as


def names(model: LineModel) -> tuple[dict[str, _Input], dict[str, _Quantity]]:
    """The line's what-if inputs and quantities by name, qualified by step where a kind repeats."""
    line = model.description
    inputs: dict[str, _Input] = {}
    quantities: dict[str, _Quantity] = {}
    for step in model.steps.values():
        for role, held in step.whatif_inputs().items():
            inputs[line.qualified(step.machine, role)] = _Input(step, role, held)
        for name, measured in step.quantities.items():
            quantities[line.qualified(step.machine, name)] = _Quantity(step, name, measured)
    return inputs, quantities


def measured_signals(model: LineModel) -> dict[str, tuple[str, str]]:
    """What-if quantity -> the (machine, stored signal) it is read as: its spec limits and scrap risk."""
    return {name: (q.step.machine, q.step.signal_name(q.measured)) for name, q in names(model)[1].items()}


class WhatIf:
    """Forward and inverse what-if on a ``LineModel``; the operating point is each step's last tick."""

    def __init__(self, model: LineModel) -> None:
        if not any(model.calibrated.values()):
            raise WhatIfError(
                "every model is still calibrating: "
                + "; ".join(f"{m} {model.calibration_progress(m)}" for m in model.calibrated)
            )
        self.model = model
        self.steps = [s for s in model.steps.values() if s.quantities]
        self.inputs, self.quantities = names(model)
        self.base = {
            name: model.stored(i.step.machine, i.held, float(i.step.current.get(i.held, math.nan)))
            for name, i in self.inputs.items()
        }
        recipe = self._forward(self.base)
        self.specs = {}
        for name, found in recipe.items():
            q = self.quantities[name]
            share = q.step.tolerance.get(q.name)
            if share is not None and isinstance(found, Forecast):
                value = model.stored(q.step.machine, q.measured, found.value)
                self.specs[name] = (value * (1 - share), value * (1 + share))

    @property
    def setpoints(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    def unit(self, quantity: str) -> str:
        q = self.quantities[quantity]
        return self.model.unit(q.step.machine, q.measured)

    # ------------------------------------------------------------------ forward
    def _forward(self, setpoints: Mapping[str, float]) -> dict[str, Forecast | str]:
        """Each quantity's forecast (kind's units) or the reason it has none, in the material flow's order."""
        given = {**self.base, **setpoints}
        found: dict[tuple[str, str], Forecast | str] = {}
        for step in self.steps:
            inputs = {
                i.role: self.model.into(step.machine, i.held, given[name])
                for name, i in self.inputs.items()
                if i.step is step
            }

            def upstream(quantity: str, step: StepModel = step) -> Forecast:
                for source in step.upstream_order():
                    if (source.machine, quantity) in found:
                        forecast = found[(source.machine, quantity)]
                        if isinstance(forecast, str):
                            raise Unpredictable(f"needs {quantity}: {forecast}")
                        return forecast
                raise Unpredictable(f"no step upstream of {step.machine} forecasts {quantity}")

            for name, forecast in step.forecast(inputs, upstream).items():
                found[(step.machine, name)] = forecast
        return {
            name: found.get((q.step.machine, q.name), "not forecast") for name, q in self.quantities.items()
        }

    # ------------------------------------------------------------------ answers
    def predict(self, setpoints: Mapping[str, float]) -> Answer:
        """Every quality the models can predict for these setpoints, and why the others cannot be."""
        unknown = set(setpoints) - set(self.inputs)
        if unknown:
            raise WhatIfError(
                f"unknown setpoint(s) {', '.join(sorted(unknown))}; known: {', '.join(self.inputs)}"
            )
        answer = Answer()
        for name, found in self._forward(setpoints).items():
            if isinstance(found, str):
                answer.unavailable.append(Unavailable(name, found))
            elif not (math.isfinite(found.value) and math.isfinite(found.sigma_model)):
                answer.unavailable.append(Unavailable(name, "the model gives no finite value here"))
            else:
                q = self.quantities[name]
                machine, model = q.step.machine, self.model
                low, high = self.specs.get(name, (None, None))
                answer.predictions.append(
                    Prediction(
                        name,
                        model.stored(machine, q.measured, found.value),
                        model.stored_sigma(machine, q.measured, found.sigma_model),
                        model.stored_sigma(machine, q.measured, found.sigma_noise),
                        self.unit(name),
                        low,
                        high,
                        found.extrapolated,
                    )
                )
        return answer

    def _forecast_value(self, name: str, found: Forecast | str) -> float:
        if not isinstance(found, Forecast):
            return math.nan
        q = self.quantities[name]
        return self.model.stored(q.step.machine, q.measured, found.value)

    def inverse(
        self, targets: Mapping[str, float], bounds: Mapping[str, tuple[float, float]] | None = None
    ) -> dict[str, float]:
        """Setpoints within ``bounds`` (default: ±20 % of the current ones of each step's usual handles:
        flow, speed, load and roll temperature) whose predictions come closest to ``targets``, each
        weighted by its spec tolerance."""
        defaults = [name for name, i in self.inputs.items() if i.role in type(i.step).inverse_inputs]
        names = list(bounds) if bounds else defaults
        unknown = [n for n in names if n not in self.inputs]
        unnamed = [q for q in targets if q not in self.quantities]
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
                value = self._forecast_value(q, predicted[q])
                misses.append((value - t) / scale[q] if math.isfinite(value) else 1e6)
            return np.r_[misses, 0.01 * u]

        low = np.array([(lo - s0) / sp for (lo, _), s0, sp in zip(limits, start, span, strict=True)])
        high = np.array([(hi - s0) / sp for (_, hi), s0, sp in zip(limits, start, span, strict=True)])
        result = optimize.least_squares(residuals, np.zeros(len(names)), bounds=(low, high), method="dogbox")
        return {n: float(v) for n, v in zip(names, start + result.x * span, strict=True)}
