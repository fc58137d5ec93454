"""The calender: compaction law (porosity, thickness) from line load, roll temperature, incoming loading."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from core.records import ModelOutput, Parameter
from models.physics import CalenderModel
from models.rootcause import classify_calender
from models.steps.base import Forecast, StepSpec, TickStep, Unpredictable, Upstream, Values, get


class CalenderStep(TickStep):
    kind: ClassVar[str] = "calender"
    units: ClassVar[Mapping[str, str]] = {
        "incoming_loading": "mg/cm2",
        "line_load": "N/mm",
        "line_load_setpoint": "N/mm",
        "roll_gap": "um",
        "roll_temperature": "Cel",
        "ambient_temperature": "Cel",
        "roll_temperature_setpoint": "Cel",
        "speed": "m/min",
        "thickness": "um",
        "porosity": "%",
        "roll_position": "m",
    }
    required: ClassVar[tuple[str, ...]] = (
        "incoming_loading",
        "line_load",
        "line_load_setpoint",
        "roll_temperature",
        "roll_temperature_setpoint",
        "thickness",
        "porosity",
    )
    consequential: ClassVar[frozenset[str]] = frozenset({"upstream_loading"})
    level_features: ClassVar[Mapping[str, float]] = {"incoming_loading": 2.0}
    ml_context: ClassVar[tuple[str, ...]] = ("speed",)
    ml_targets: ClassVar[tuple[str, ...]] = ("thickness_residual", "porosity_residual")
    ambient_targets: ClassVar[tuple[str, ...]] = ("roll_temperature_deviation",)
    elimination_causes: ClassVar[frozenset[str]] = frozenset({"load_cell_bias", "upstream_loading"})
    quantities: ClassVar[Mapping[str, str]] = {"porosity": "porosity", "thickness": "thickness"}
    tolerance: ClassVar[Mapping[str, float]] = {"porosity": 0.05, "thickness": 0.03}
    inverse_inputs: ClassVar[tuple[str, ...]] = ("line_load", "roll_temperature")

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        self.calender = CalenderModel(self.machine)
        self.feature_units = {
            "roll_temperature_deviation": "Cel",
            "line_load_deviation": "N/mm",
            "thickness_residual": "um",
            "porosity_residual": "%",
            "incoming_loading": "mg/cm2",
        }

    def fit(self, buffer: Sequence[tuple[int, Values]]) -> None:
        for _, values in buffer:
            self.calender.calibrate(values)
        self.calender.identify()

    def features(self, values: Values) -> Values:
        t = self.last_ns or 0
        predicted = self.calender.predict(values)
        for signal, (value, sigma) in predicted.items():
            self.outputs.append(ModelOutput(self.machine, signal, "predicted", value, t, sigma))
        return {
            "roll_temperature_deviation": get(values, "roll_temperature")
            - get(values, "roll_temperature_setpoint"),
            "line_load_deviation": get(values, "line_load") - get(values, "line_load_setpoint"),
            "thickness_residual": get(values, "thickness") - predicted["thickness"][0],
            "porosity_residual": get(values, "porosity") - predicted["porosity"][0],
            "incoming_loading": get(values, "incoming_loading"),
        }

    def classify(self, moving: set[str], feature: str, magnitude: float) -> tuple[str, str, float] | None:
        del magnitude
        return classify_calender(moving, feature)

    def whatif_inputs(self) -> dict[str, str]:
        return {"line_load": "line_load_setpoint", "roll_temperature": "roll_temperature_setpoint"}

    def forecast(self, inputs: Mapping[str, float], upstream: Upstream) -> dict[str, Forecast | str]:
        """Porosity and thickness by the compaction law at the loading the upstream coater predicts."""
        try:
            self.need(inputs, "line_load", "roll_temperature")
            loading = upstream("dry_loading")
        except Unpredictable as missing:
            return dict.fromkeys(self.quantities, str(missing))
        used = {
            "line_load": inputs["line_load"],
            "roll_temperature": inputs["roll_temperature"],
            "incoming_loading": loading.value,
        }
        predicted = self.calender.predict(used)
        outside = self.extrapolated(used) + loading.extrapolated
        porosity, porosity_sigma = predicted["porosity"]
        thickness, thickness_sigma = predicted["thickness"]
        share = thickness / loading.value  # thickness follows the incoming loading in proportion
        return {
            "porosity": Forecast(porosity, porosity_sigma, self.noise("porosity"), outside),
            "thickness": Forecast(
                thickness,
                math.hypot(thickness_sigma, share * loading.sigma_model),
                self.noise("thickness"),
                outside,
            ),
        }

    def parameters(self) -> list[Parameter]:
        return self.calender.parameters() if self.done else []

    def physics_state(self) -> dict[str, Any]:
        return {"calender": self.calender.state()}

    def load_physics(self, state: Mapping[str, Any]) -> None:
        self.calender.load(state["calender"])
