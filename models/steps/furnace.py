"""The sintering furnace: densification of ceramic tape by the master sintering curve, and its faults.

Physics, calibrated from the line's data (DOMAIN.md, "Sintering / heat-treatment furnace"; Su & Johnson
1996): the work of sintering Θ = Σ_z t_z·exp(−Q/RT_z)/T_z over the zones, with each zone's dwell
t_z ∝ 1/belt speed (the zone lengths are a constant the fit absorbs), and relative density a sigmoid in
ln Θ, expanded around the calibrated operating point: D = D₀ + s·(x − x₀) + c·(x − x₀)², x = ln Θ. The
apparent activation energy Q is a prior (350 ± 100 kJ/mol, "hundreds of kJ/mol"), the slope s a weak one
and the bend c zero, until the calibration period moves the zone temperatures or the belt (a trial);
then all are fitted by nonlinear least squares. Each zone's heater power is learnt against its
temperature (P = g·(T − 25 °C)), so a heater that needs more power to hold its zone shows, and a zone
that needs less than its reading implies runs colder than it reads.

Features: each zone against its setpoint, the belt against its setpoint, the atmosphere's oxygen and dew
point levels, density against the sintering curve and each zone's power against its learnt need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from scipy import optimize

from core.records import ModelOutput, Parameter, Source
from models.calibration import RecursiveLeastSquares
from models.steps.base import Forecast, StepSpec, TickStep, Unpredictable, Upstream, Values, get

R = 8.314  # J/(mol K)
ZONE = re.compile(r"^zone(\d+)_temperature$")
ACTIVATION_PRIOR = (350.0, 100.0)  # kJ/mol, (mean, σ)
SLOPE_PRIOR = (5.0, 5.0)  # density points per unit of ln Θ, (mean, σ)
CURVATURE_PRIOR = 5.0  # σ of the curve's bend (points per unit of ln Θ squared) around 0
MIN_TRIAL_SPAN = 0.05  # of ln Θ over the calibration period: what lets Q and s be fitted
AMBIENT_C = 25.0


def _zones(roles: frozenset[str]) -> tuple[int, ...]:
    return tuple(sorted(int(m.group(1)) for r in roles if (m := ZONE.match(r))))


def log_work(zones_c: Sequence[float], belt: float, activation_kj: float) -> float:
    """ln Θ up to a constant: ln Σ_z exp(−Q/RT_z)/T_z − ln v (a zone's dwell is its length over v)."""
    if belt <= 0 or not all(math.isfinite(t) for t in zones_c):
        return math.nan
    q = activation_kj * 1000.0
    kelvin = np.asarray(zones_c, dtype=float) + 273.15
    terms = -q / (R * kelvin) - np.log(kelvin)
    top = float(terms.max())
    return top + math.log(float(np.exp(terms - top).sum())) - math.log(belt)


class SinteringCurve:
    """D = D₀ + s·(x(Q) − x₀) + c·(x(Q) − x₀)²: the master sintering curve around the operating point.

    The sigmoid's curvature (c) matters across a trial's range of ln Θ; without it Q would absorb the
    bend. Q, s and c stay priors (c = 0) unless the calibration period moved ln Θ (see module).
    """

    def __init__(self) -> None:
        self.activation = ACTIVATION_PRIOR[0]
        self.d0 = math.nan
        self.slope = SLOPE_PRIOR[0]
        self.curvature = 0.0
        self.x0 = math.nan
        self.centre: tuple[list[float], float] = ([], math.nan)  # the operating point's zones and belt
        # Q, D₀, s, c
        self.covariance = np.diag([ACTIVATION_PRIOR[1] ** 2, 0.0, SLOPE_PRIOR[1] ** 2, CURVATURE_PRIOR**2])
        self.sources: list[Source] = ["prior", "data", "prior", "prior"]
        self.status = "prior: not calibrated yet"

    def fit(self, zones: np.ndarray, belt: np.ndarray, density: np.ndarray) -> None:
        keep = np.isfinite(zones).all(axis=1) & np.isfinite(belt) & np.isfinite(density) & (belt > 0)
        zones, belt, density = zones[keep], belt[keep], density[keep]
        if density.size < 30:
            self.status = f"prior: {density.size} samples"
            return
        x = np.array([log_work(z, v, self.activation) for z, v in zip(zones, belt, strict=True)])
        centre_zones, centre_belt = np.median(zones, axis=0), float(np.median(belt))
        self.centre = ([float(v) for v in centre_zones], centre_belt)
        self.x0 = log_work(centre_zones, centre_belt, self.activation)
        moved = float(np.percentile(x, 99) - np.percentile(x, 1))
        if moved < MIN_TRIAL_SPAN:
            self.d0 = float(np.median(density))
            noise = float(np.std(density - self.d0, ddof=1)) if density.size > 1 else 0.0
            self.covariance[1, 1] = noise**2 / density.size
            self.status = f"prior: ln Θ spans {moved:.3f} (< {MIN_TRIAL_SPAN} for Q and the slope)"
            return

        def residuals(p: np.ndarray) -> np.ndarray:
            xs = np.array([log_work(z, v, p[0]) for z, v in zip(zones, belt, strict=True)])
            dx = xs - log_work(centre_zones, centre_belt, p[0])
            return p[1] + p[2] * dx + p[3] * dx**2 - density

        start = np.array([self.activation, float(np.median(density)), self.slope, 0.0])
        bounds = ([50.0, 0.0, 0.0, -100.0], [1500.0, 100.0, 100.0, 100.0])
        result = optimize.least_squares(residuals, start, bounds=bounds)
        dof = max(density.size - 4, 1)
        try:
            self.covariance = np.linalg.inv(result.jac.T @ result.jac) * float(result.fun @ result.fun) / dof
        except np.linalg.LinAlgError:
            self.status = "prior: the trial does not separate Q from the slope"
            return
        self.activation, self.d0, self.slope, self.curvature = (float(v) for v in result.x)
        self.x0 = log_work(centre_zones, centre_belt, self.activation)
        self.sources = ["data", "data", "data", "data"]
        self.status = f"identified from a trial: ln Θ spans {moved:.2f}"

    def predict(self, zones_c: Sequence[float], belt: float) -> tuple[float, float]:
        x = log_work(zones_c, belt, self.activation)
        if not (math.isfinite(x) and math.isfinite(self.d0)):
            return math.nan, math.nan
        step = 1.0  # kJ/mol, for d(x − x₀)/dQ: x₀ moves with Q too
        dx = x - self.x0
        shifted = log_work(zones_c, belt, self.activation + step) - log_work(
            *self.centre, self.activation + step
        )
        dq = (shifted - dx) / step
        slope = self.slope + 2 * self.curvature * dx
        gradient = np.array([slope * dq, 1.0, dx, dx**2])
        sigma = math.sqrt(max(float(gradient @ self.covariance @ gradient), 0.0))
        return self.d0 + self.slope * dx + self.curvature * dx**2, sigma

    def state(self) -> dict[str, Any]:
        return {
            "activation": self.activation,
            "d0": self.d0,
            "slope": self.slope,
            "curvature": self.curvature,
            "x0": self.x0,
            "centre": [self.centre[0], self.centre[1]],
            "covariance": self.covariance.tolist(),
            "sources": self.sources,
            "status": self.status,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.activation, self.d0, self.slope, self.curvature, self.x0 = (
            float(state[k]) for k in ("activation", "d0", "slope", "curvature", "x0")
        )
        self.centre = ([float(v) for v in state["centre"][0]], float(state["centre"][1]))
        self.covariance = np.array(state["covariance"], dtype=float)
        self.sources = list(state["sources"])
        self.status = str(state["status"])


class FurnaceStep(TickStep):
    kind: ClassVar[str] = "sintering_furnace"
    units: ClassVar[Mapping[str, str]] = {
        "belt_speed": "mm/min",
        "belt_speed_setpoint": "mm/min",
        "o2": "ppm",
        "dew_point": "Cel",
        "relative_density": "%",
        "shrinkage": "%",
        "sintered_thickness": "um",
        "tape_position": "m",
    }
    required: ClassVar[tuple[str, ...]] = ("belt_speed", "relative_density")
    level_features: ClassVar[Mapping[str, float]] = {"o2": 2.0, "dew_point": 2.0}
    elimination_causes: ClassVar[frozenset[str]] = frozenset({"thermocouple_drift", "heater_aging"})
    quantities: ClassVar[Mapping[str, str]] = {"relative_density": "relative_density"}
    tolerance: ClassVar[Mapping[str, float]] = {"relative_density": 0.01}
    inverse_inputs: ClassVar[tuple[str, ...]] = ("belt_speed",)

    @classmethod
    def role_units(cls, roles: frozenset[str]) -> dict[str, str]:
        """With the zones this furnace's description names (their number varies by furnace)."""
        zoned = {
            f"zone{z}_{part}": unit
            for z in _zones(roles)
            for part, unit in (("temperature", "Cel"), ("setpoint", "Cel"), ("power", "kW"))
        }
        return {**cls.units, **zoned}

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        self.zones = _zones(spec.roles)
        self.temperatures = tuple(f"zone{z}_temperature" for z in self.zones)
        self.curve = SinteringCurve()
        self.power = {z: RecursiveLeastSquares(1, prior=[0.0]) for z in self.zones}
        self.feature_units = {
            **{f"zone{z}_deviation": "Cel" for z in self.zones},
            **{f"zone{z}_power_residual": "kW" for z in self.zones},
            "belt_speed_deviation": "mm/min",
            "o2": "ppm",
            "dew_point": "Cel",
            "density_residual": "%",
        }

    def _zone_values(self, values: Mapping[str, float]) -> list[float]:
        return [get(values, name) for name in self.temperatures]

    def fit(self, buffer: Sequence[tuple[int, Values]]) -> None:
        zones = np.array([self._zone_values(v) for _, v in buffer], dtype=float).reshape(-1, len(self.zones))
        belt = np.array([get(v, "belt_speed") for _, v in buffer], dtype=float)
        density = np.array([get(v, "relative_density") for _, v in buffer], dtype=float)
        if self.zones:
            self.curve.fit(zones, belt, density)
        for _, v in buffer:
            for z, fit in self.power.items():
                temperature, power = get(v, f"zone{z}_temperature"), get(v, f"zone{z}_power")
                if math.isfinite(temperature) and math.isfinite(power):
                    fit.update([temperature - AMBIENT_C], power)

    def features(self, values: Values) -> Values:
        t = self.last_ns or 0
        density, sigma = self.curve.predict(self._zone_values(values), get(values, "belt_speed"))
        self.outputs.append(ModelOutput(self.machine, "relative_density", "predicted", density, t, sigma))
        features = {
            f"zone{z}_deviation": get(values, f"zone{z}_temperature") - get(values, f"zone{z}_setpoint")
            for z in self.zones
        }
        for z, fit in self.power.items():
            need = fit.predict([get(values, f"zone{z}_temperature") - AMBIENT_C])
            features[f"zone{z}_power_residual"] = get(values, f"zone{z}_power") - need
        features |= {
            "belt_speed_deviation": get(values, "belt_speed") - get(values, "belt_speed_setpoint"),
            "o2": get(values, "o2"),
            "dew_point": get(values, "dew_point"),
            "density_residual": get(values, "relative_density") - density,
        }
        return features

    def classify(self, moving: set[str], feature: str, magnitude: float) -> tuple[str, str, float] | None:
        """Zone, belt and atmosphere faults show in their own signals; a density shift with none of them
        is a thermocouple reading right while its zone runs off (or a tape lot sintering differently), and
        so is a zone needing less power than its reading implies."""
        zones = sorted(f for f in moving | {feature} if f.startswith("zone") and f.endswith("_deviation"))
        if zones:
            return "furnace_zone_fault", zones[0].removesuffix("_deviation") + "_temperature", 0.9
        if feature == "belt_speed_deviation" or "belt_speed_deviation" in moving:
            return "belt_speed_error", "belt_speed", 0.85
        for gas in ("o2", "dew_point"):
            if feature == gas or gas in moving:
                return "atmosphere_leak", gas, 0.85
        if feature.endswith("_power_residual"):
            # more power for the same reading: the heater ages; less: the zone runs colder than it reads
            cause = "heater_aging" if magnitude > 0 else "thermocouple_drift"
            return cause, feature.removesuffix("_residual"), 0.7
        if feature == "density_residual":
            return "thermocouple_drift", "relative_density", 0.6
        return "correlation_break", feature, 0.3

    # ------------------------------------------------------------------ what-if
    def whatif_inputs(self) -> dict[str, str]:
        held = {f"zone{z}_temperature": f"zone{z}_setpoint" for z in self.zones}
        return {**held, "belt_speed": "belt_speed_setpoint"}

    def forecast(self, inputs: Mapping[str, float], upstream: Upstream) -> dict[str, Forecast | str]:
        """Relative density by the sintering curve at these zone temperatures and belt speed."""
        del upstream
        try:
            self.need(inputs, *self.temperatures, "belt_speed")
        except Unpredictable as missing:
            return {"relative_density": str(missing)}
        density, sigma = self.curve.predict([inputs[t] for t in self.temperatures], inputs["belt_speed"])
        used = {n: inputs[n] for n in (*self.temperatures, "belt_speed")}
        noise = self.noise("relative_density")
        return {"relative_density": Forecast(density, sigma, noise, self.extrapolated(used))}

    # ------------------------------------------------------------------ outputs and state
    def parameters(self) -> list[Parameter]:
        if not self.done:
            return []
        m, c = self.machine, self.curve
        sigmas = [math.sqrt(max(float(v), 0.0)) for v in np.diag(c.covariance)]
        found = [
            Parameter(m, "activation_energy", c.activation, sigmas[0], "kJ/mol", c.sources[0]),
            Parameter(m, "density_at_recipe", c.d0, sigmas[1], "%", c.sources[1]),
            Parameter(m, "density_per_log_work", c.slope, sigmas[2], "%", c.sources[2]),
            Parameter(m, "density_curvature", c.curvature, sigmas[3], "%", c.sources[3]),
        ]
        found += [
            Parameter(m, f"zone{z}_heat_loss", float(f.theta[0]), float(f.sigmas[0]), "kW/Cel")
            for z, f in self.power.items()
        ]
        return found

    def physics_state(self) -> dict[str, Any]:
        return {"curve": self.curve.state(), "power": {str(z): f.state() for z, f in self.power.items()}}

    def load_physics(self, state: Mapping[str, Any]) -> None:
        self.curve.load(state["curve"])
        self.power = {int(z): RecursiveLeastSquares.from_state(f) for z, f in state["power"].items()}
