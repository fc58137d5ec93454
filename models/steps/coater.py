"""The slot-die coater with its dryer and beta gauge: mass balance, first-order drying, fault signatures.

Features: the pump's delivered flow against its setpoint × learnt efficiency, web speed and each dryer
zone against their setpoints, the gauge's loading against the mass balance, residual solvent against the
drying model, and the levels of loading and slurry density. The coater also remembers the loading of
every 10 m of each roll it coats, which cells cut from that roll are judged against (genealogy).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from core.records import ModelOutput, Parameter
from models.physics import CoaterModel, DryerModel
from models.rootcause import classify_coater
from models.steps.base import Forecast, StepSpec, TickStep, Unpredictable, Upstream, Values, get

ROLL_BIN_M = 10.0
ROLLS_KEPT = 64
ZONE = re.compile(r"^dryer_zone(\d+)_temperature$")
LOADING = "mg/cm2"


def _zones(roles: frozenset[str]) -> tuple[int, ...]:
    return tuple(sorted(int(m.group(1)) for r in roles if (m := ZONE.match(r))))


class CoaterStep(TickStep):
    kind: ClassVar[str] = "slot_die_coater"
    units: ClassVar[Mapping[str, str]] = {
        "pump_flow": "mL/min",
        "pump_flow_setpoint": "mL/min",
        "web_speed": "m/min",
        "web_speed_setpoint": "m/min",
        "coating_width": "mm",
        "slot_gap": "um",
        "slurry_solids": "%",
        "slurry_density": "g/cm3",
        "residual_solvent": "%",
        "dry_loading": LOADING,
        "web_tension": "N",
        "ambient_temperature": "Cel",
        "roll_position": "m",
    }
    required: ClassVar[tuple[str, ...]] = (
        "pump_flow",
        "pump_flow_setpoint",
        "web_speed",
        "web_speed_setpoint",
        "coating_width",
        "slurry_density",
        "slurry_solids",
        "dry_loading",
    )
    level_features: ClassVar[Mapping[str, float]] = {"dry_loading": 2.0, "slurry_density": 2.0}
    ml_context: ClassVar[tuple[str, ...]] = ("web_tension", "slot_gap")
    ml_targets: ClassVar[tuple[str, ...]] = ("dry_loading_residual", "residual_solvent")
    ambient_targets: ClassVar[tuple[str, ...]] = ("dryer_zone*_deviation",)
    elimination_causes: ClassVar[frozenset[str]] = frozenset({"gauge_bias", "upstream_loading"})
    declared: ClassVar[tuple[str, ...]] = ("slurry_solids",)
    quantities: ClassVar[Mapping[str, str]] = {
        "dry_loading": "dry_loading",
        "residual_solvent": "residual_solvent",
    }
    tolerance: ClassVar[Mapping[str, float]] = {"dry_loading": 0.02}
    inverse_inputs: ClassVar[tuple[str, ...]] = ("pump_flow", "web_speed")

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        self.zones = _zones(spec.roles)
        self.zone_roles = tuple(f"dryer_zone{z}_temperature" for z in self.zones)
        self.coater = CoaterModel(self.machine)
        self.dryer = DryerModel(self.machine, self.zone_roles) if self.zones else None
        self.feature_units = {
            "pump_flow_deviation": "mL/min",
            "web_speed_deviation": "m/min",
            "dry_loading_residual": LOADING,
            "dry_loading": LOADING,
            "slurry_density": "g/cm3",
            "residual_solvent": "%",
            **{f"dryer_zone{z}_deviation": "Cel" for z in self.zones},
        }
        #: roll -> 10 m bin -> [sum of loading, count]
        self.roll_loading: dict[str, dict[str, list[float]]] = {}

    @classmethod
    def role_units(cls, roles: frozenset[str]) -> dict[str, str]:
        """With the dryer zones this step's description names (their number varies by line)."""
        zones = _zones(roles)
        return {
            **cls.units,
            **{f"dryer_zone{z}_temperature": "Cel" for z in zones},
            **{f"dryer_zone{z}_setpoint": "Cel" for z in zones},
        }

    def fit(self, buffer: Sequence[tuple[int, Values]]) -> None:
        for _, values in buffer:
            self.coater.calibrate(values)
            if self.dryer is not None:
                self.dryer.calibrate(values)

    def delivered_flow(self, setpoint: float) -> float:
        """The flow the pump delivers at ``setpoint`` (its learnt efficiency)."""
        return float(self.coater.pump.theta[0]) * setpoint

    def features(self, values: Values) -> Values:
        t = self.last_ns or 0
        loading, loading_sigma = self.coater.predict(values)
        self.outputs.append(ModelOutput(self.machine, "dry_loading", "predicted", loading, t, loading_sigma))
        solvent = math.nan
        if self.dryer is not None:
            solvent, solvent_sigma = self.dryer.predict(values)
            self.outputs.append(
                ModelOutput(self.machine, "residual_solvent", "predicted", solvent, t, solvent_sigma)
            )
        features = {
            "pump_flow_deviation": get(values, "pump_flow")
            - self.delivered_flow(get(values, "pump_flow_setpoint")),
            "web_speed_deviation": get(values, "web_speed") - get(values, "web_speed_setpoint"),
            "dry_loading_residual": get(values, "dry_loading") - loading,
            "dry_loading": get(values, "dry_loading"),
            "slurry_density": get(values, "slurry_density"),
        }
        if self.dryer is not None:
            features["residual_solvent"] = get(values, "residual_solvent") - solvent
        for z in self.zones:
            features[f"dryer_zone{z}_deviation"] = get(values, f"dryer_zone{z}_temperature") - get(
                values, f"dryer_zone{z}_setpoint"
            )
        return features

    def classify(self, moving: set[str], feature: str, magnitude: float) -> tuple[str, str, float] | None:
        del magnitude
        return classify_coater(moving, feature)

    def judged(self, feature: str, magnitude: float) -> bool:
        return not (feature == "residual_solvent" and magnitude < 0)  # drier than usual is no risk

    # ------------------------------------------------------------------ what-if
    def whatif_inputs(self) -> dict[str, str]:
        held = {
            "pump_flow": "pump_flow_setpoint",
            "web_speed": "web_speed_setpoint",
            "coating_width": "coating_width",
            "slurry_density": "slurry_density",
            "slurry_solids": "slurry_solids",
        }
        return held | {f"dryer_zone{z}_temperature": f"dryer_zone{z}_setpoint" for z in self.zones}

    def forecast(self, inputs: Mapping[str, float], upstream: Upstream) -> dict[str, Forecast | str]:
        """Dry loading from the mass balance at the delivered flow; residual solvent from the dose."""
        del upstream
        out: dict[str, Forecast | str] = {}
        delivered = {**inputs, "pump_flow": self.delivered_flow(inputs.get("pump_flow", math.nan))}
        try:
            self.need(inputs, *self.coater.inputs)
            value, sigma = self.coater.predict(delivered)
            used = {k: delivered[k] for k in self.coater.inputs}
            out["dry_loading"] = Forecast(value, sigma, self.noise("dry_loading"), self.extrapolated(used))
        except Unpredictable as missing:
            out["dry_loading"] = str(missing)
        if self.dryer is None:
            return out
        try:
            self.need(inputs, "web_speed", *self.zone_roles)
            value, sigma = self.dryer.predict(delivered)
            used = {k: delivered[k] for k in (*self.zone_roles, "web_speed")}
            noise = self.noise("residual_solvent")
            out["residual_solvent"] = Forecast(value, sigma, noise, self.extrapolated(used))
        except Unpredictable as missing:
            out["residual_solvent"] = str(missing)
        return out

    # ------------------------------------------------------------------ genealogy
    def observed(self, values: Values) -> None:
        loading, position = values.get("dry_loading", math.nan), values.get("roll_position", math.nan)
        if self.roll is None or not (math.isfinite(loading) and math.isfinite(position)):
            return
        bins = self.roll_loading.setdefault(self.roll, {})
        entry = bins.setdefault(str(int(position // ROLL_BIN_M)), [0.0, 0.0])
        entry[0] += loading
        entry[1] += 1
        if len(self.roll_loading) > ROLLS_KEPT:
            self.roll_loading.pop(next(iter(self.roll_loading)))

    def roll_value(self, role: str, roll: str, position_m: float) -> float:
        bins = self.roll_loading.get(roll)
        if role != "dry_loading" or not bins:
            return math.nan
        if math.isfinite(position_m) and (entry := bins.get(str(int(position_m // ROLL_BIN_M)))):
            return entry[0] / entry[1]
        return sum(e[0] for e in bins.values()) / sum(e[1] for e in bins.values())

    def roll_means(self, role: str) -> dict[str, float]:
        if role != "dry_loading":
            return {}
        return {
            roll: sum(e[0] for e in bins.values()) / sum(e[1] for e in bins.values())
            for roll, bins in self.roll_loading.items()
        }

    # ------------------------------------------------------------------ outputs and state
    def parameters(self) -> list[Parameter]:
        if not self.done:
            return []
        return self.coater.parameters() + (self.dryer.parameters() if self.dryer is not None else [])

    def physics_state(self) -> dict[str, Any]:
        return {
            "coater": self.coater.state(),
            "dryer": self.dryer.state() if self.dryer is not None else None,
            "roll_loading": self.roll_loading,
        }

    def load_physics(self, state: Mapping[str, Any]) -> None:
        self.coater.load(state["coater"])
        if self.dryer is not None and state["dryer"] is not None:
            self.dryer.load(state["dryer"])
        self.roll_loading = {
            r: {b: list(e) for b, e in bins.items()} for r, bins in state["roll_loading"].items()
        }
