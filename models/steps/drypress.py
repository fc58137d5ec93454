"""The dry-electrode press: solvent-free film from powder, its mass balance, compaction and fault signatures.

Physics, calibrated from the line's data (DOMAIN.md, "Dry-electrode press"):
- mass balance m_A = a·100·feed/(W·v) + b (mg/cm² from g/min, mm, m/min), ``a`` absorbing what the
  balance does not know (edge trim, feeder calibration), ``b`` the gauge's offset; the feeder's
  delivered/set ratio is learnt beside it;
- compaction, the Heckel law ln(1/(1 − D)) = K·q_L + A linearised around the calibrated operating point
  as the film density ρ_f = ρ₀ + c_q·(q_L − q₀) + c_T·(T − T₀): a film presses denser under more load
  and, its PTFE binder softer, at a hotter roll. A slope is a prior (0–1·10⁻³ g/cm³ per N/mm and
  0–0.01 g/cm³ per °C, as ±1σ around the middle) unless the calibration period moved its input (a
  trial); film thickness h = 10·m_A/ρ_f from the gauge's loading.

Features: the feeder's flow against setpoint × efficiency, speed, roll temperature and line load against
their setpoints, the gauge against the mass balance, the thickness against the compaction law, and the
loading's level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from core.records import ModelOutput, Parameter, Source
from models.calibration import RecursiveLeastSquares
from models.steps.base import Forecast, StepSpec, TickStep, Unpredictable, Upstream, Values, get

LOADING = "mg/cm2"
BALANCE_INPUTS = ("powder_feed", "film_width", "line_speed")
SLOPE_PRIORS = ((5e-4, 5e-4), (0.005, 0.005))  # (mean, σ) of c_q (g/cm³ per N/mm) and c_T (per °C)
MIN_SPANS = (100.0, 5.0)  # N/mm of line load, °C of roll temperature that make a trial


def mass_balance(feed: float, width: float, speed: float) -> float:
    """m_A (mg/cm²) of ``feed`` g/min spread over ``width`` mm at ``speed`` m/min."""
    return 100.0 * feed / (width * speed)


def _finite(values: Mapping[str, float], *names: str) -> bool:
    return all(math.isfinite(values.get(n, math.nan)) for n in names)


class FilmCompaction:
    """ρ_f = ρ₀ + c_q·(q_L − q₀) + c_T·(T − T₀), fitted by least squares on the calibration period.

    A slope is fitted only when its input moved during calibration (``MIN_SPANS``); otherwise it stays at
    its prior, since the reading noise of a steady load or temperature is no excitation: fitted, the
    slope would learn that noise does not compact the film, which says nothing about the load.
    """

    def __init__(self) -> None:
        self.reference = (math.nan, math.nan)
        self.theta = np.array([math.nan, SLOPE_PRIORS[0][0], SLOPE_PRIORS[1][0]])
        self.covariance = np.diag([0.0, SLOPE_PRIORS[0][1] ** 2, SLOPE_PRIORS[1][1] ** 2])
        self.sources: list[Source] = ["data", "prior", "prior"]

    def fit(self, load: np.ndarray, temperature: np.ndarray, density: np.ndarray) -> None:
        keep = np.isfinite(load) & np.isfinite(temperature) & np.isfinite(density)
        q, t, rho = load[keep], temperature[keep], density[keep]
        if rho.size < 10:
            return
        self.reference = (float(np.median(q)), float(np.median(t)))
        inputs = (q - self.reference[0], t - self.reference[1])
        excited = [span(x) >= minimum for x, minimum in zip(inputs, MIN_SPANS, strict=True)]
        target = rho - sum(self.theta[i + 1] * x for i, x in enumerate(inputs) if not excited[i])
        columns = [np.ones_like(rho)] + [x for i, x in enumerate(inputs) if excited[i]]
        design = np.column_stack(columns)
        solution, *_ = np.linalg.lstsq(design, target, rcond=None)
        residual = target - design @ solution
        noise = float(residual @ residual) / max(rho.size - design.shape[1], 1)
        inner = np.linalg.inv(design.T @ design) * noise
        fitted = [0] + [i + 1 for i in range(2) if excited[i]]
        for a, i in enumerate(fitted):
            self.theta[i] = solution[a]
            for b, j in enumerate(fitted):
                self.covariance[i, j] = inner[a, b]
        prior: Source = "prior"
        self.sources = ["data", *(("data" if e else prior) for e in excited)]

    def predict(self, load: float, temperature: float) -> tuple[float, float]:
        if math.isnan(self.reference[0]) or not (math.isfinite(load) and math.isfinite(temperature)):
            return math.nan, math.nan
        phi = np.array([1.0, load - self.reference[0], temperature - self.reference[1]])
        return float(self.theta @ phi), math.sqrt(max(float(phi @ self.covariance @ phi), 0.0))

    def state(self) -> dict[str, Any]:
        return {
            "reference": list(self.reference),
            "theta": self.theta.tolist(),
            "covariance": self.covariance.tolist(),
            "sources": self.sources,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.reference = (float(state["reference"][0]), float(state["reference"][1]))
        self.theta = np.array(state["theta"], dtype=float)
        self.covariance = np.array(state["covariance"], dtype=float)
        self.sources = list(state["sources"])


def span(values: np.ndarray) -> float:
    """The range of the middle 98 % of ``values``: one spike is no trial."""
    return float(np.percentile(values, 99) - np.percentile(values, 1)) if values.size else 0.0


class DryPressStep(TickStep):
    kind: ClassVar[str] = "dry_electrode_press"
    units: ClassVar[Mapping[str, str]] = {
        "powder_feed": "g/min",
        "powder_feed_setpoint": "g/min",
        "line_speed": "m/min",
        "line_speed_setpoint": "m/min",
        "film_width": "mm",
        "roll_temperature": "Cel",
        "ambient_temperature": "Cel",
        "roll_temperature_setpoint": "Cel",
        "line_load": "N/mm",
        "line_load_setpoint": "N/mm",
        "roll_gap": "um",
        "film_thickness": "um",
        "areal_loading": LOADING,
        "film_density": "g/cm3",
        "roll_position": "m",
    }
    required: ClassVar[tuple[str, ...]] = (
        "powder_feed",
        "powder_feed_setpoint",
        "line_speed",
        "film_width",
        "roll_temperature",
        "line_load",
        "areal_loading",
        "film_thickness",
    )
    level_features: ClassVar[Mapping[str, float]] = {"areal_loading": 2.0}
    ambient_targets: ClassVar[tuple[str, ...]] = ("roll_temperature_deviation",)
    elimination_causes: ClassVar[frozenset[str]] = frozenset({"gauge_bias", "compaction_change"})
    quantities: ClassVar[Mapping[str, str]] = {
        "areal_loading": "areal_loading",
        "film_thickness": "film_thickness",
    }
    tolerance: ClassVar[Mapping[str, float]] = {"areal_loading": 0.02, "film_thickness": 0.03}
    inverse_inputs: ClassVar[tuple[str, ...]] = ("powder_feed", "line_speed")

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        self.balance = RecursiveLeastSquares(2, prior=[1.0, 0.0])
        self.balance.p = np.diag([1.0, 0.05**2])
        self.feeder = RecursiveLeastSquares(1, prior=[1.0])
        self.compaction = FilmCompaction()
        self.feature_units = {
            "powder_feed_deviation": "g/min",
            "line_speed_deviation": "m/min",
            "roll_temperature_deviation": "Cel",
            "line_load_deviation": "N/mm",
            "loading_residual": LOADING,
            "thickness_residual": "um",
            "areal_loading": LOADING,
        }

    # ------------------------------------------------------------------ physics
    def _balance(self, values: Mapping[str, float]) -> tuple[float, float]:
        if not _finite(values, *BALANCE_INPUTS) or values["film_width"] <= 0 or values["line_speed"] <= 0:
            return math.nan, math.nan
        phi = [mass_balance(*(values[n] for n in BALANCE_INPUTS)), 1.0]
        return self.balance.predict(phi), self.balance.prediction_sigma(phi)

    def delivered_feed(self, setpoint: float) -> float:
        return float(self.feeder.theta[0]) * setpoint

    def fit(self, buffer: Sequence[tuple[int, Values]]) -> None:
        for _, v in buffer:
            if _finite(v, *BALANCE_INPUTS, "areal_loading") and v["film_width"] > 0 and v["line_speed"] > 0:
                self.balance.update([mass_balance(*(v[n] for n in BALANCE_INPUTS)), 1.0], v["areal_loading"])
            if _finite(v, "powder_feed", "powder_feed_setpoint") and v["powder_feed_setpoint"] > 0:
                self.feeder.update([v["powder_feed_setpoint"]], v["powder_feed"])
        rows = np.array(
            [
                [
                    get(v, "line_load"),
                    get(v, "roll_temperature"),
                    get(v, "areal_loading"),
                    get(v, "film_thickness"),
                ]
                for _, v in buffer
            ],
            dtype=float,
        ).reshape(-1, 4)
        with np.errstate(divide="ignore", invalid="ignore"):
            density = 10.0 * rows[:, 2] / rows[:, 3]
        self.compaction.fit(rows[:, 0], rows[:, 1], np.where(rows[:, 3] > 0, density, np.nan))

    def _thickness(self, loading: float, load: float, temperature: float) -> tuple[float, float]:
        density, sigma = self.compaction.predict(load, temperature)
        if not (math.isfinite(density) and density > 0 and math.isfinite(loading)):
            return math.nan, math.nan
        thickness = 10.0 * loading / density
        return thickness, thickness * sigma / density

    def features(self, values: Values) -> Values:
        t = self.last_ns or 0
        loading, loading_sigma = self._balance(values)
        thickness, thickness_sigma = self._thickness(
            get(values, "areal_loading"), get(values, "line_load"), get(values, "roll_temperature")
        )
        m = self.machine
        self.outputs += [
            ModelOutput(m, "areal_loading", "predicted", loading, t, loading_sigma),
            ModelOutput(m, "film_thickness", "predicted", thickness, t, thickness_sigma),
        ]
        return {
            "powder_feed_deviation": get(values, "powder_feed")
            - self.delivered_feed(get(values, "powder_feed_setpoint")),
            "line_speed_deviation": get(values, "line_speed") - get(values, "line_speed_setpoint"),
            "roll_temperature_deviation": get(values, "roll_temperature")
            - get(values, "roll_temperature_setpoint"),
            "line_load_deviation": get(values, "line_load") - get(values, "line_load_setpoint"),
            "loading_residual": get(values, "areal_loading") - loading,
            "thickness_residual": get(values, "film_thickness") - thickness,
            "areal_loading": get(values, "areal_loading"),
        }

    def classify(self, moving: set[str], feature: str, magnitude: float) -> tuple[str, str, float] | None:
        """The press's fault signatures, the same reasoning as the coater's and the calender's."""
        del magnitude
        if feature == "roll_temperature_deviation" or "roll_temperature_deviation" in moving:
            return "press_roll_heating", "roll_temperature", 0.9
        if feature == "line_load_deviation":
            return "line_load_control", "line_load", 0.8
        if feature == "powder_feed_deviation" or "powder_feed_deviation" in moving:
            return "feed_drift", "powder_feed", 0.9
        if feature == "line_speed_deviation" or "line_speed_deviation" in moving:
            return "speed_control", "line_speed", 0.8
        if feature == "loading_residual":
            return "gauge_bias", "areal_loading", 0.6
        if feature == "thickness_residual":
            return "compaction_change", "film_thickness", 0.6
        return "correlation_break", feature, 0.3

    # ------------------------------------------------------------------ what-if
    def whatif_inputs(self) -> dict[str, str]:
        return {
            "powder_feed": "powder_feed_setpoint",
            "line_speed": "line_speed_setpoint",
            "film_width": "film_width",
            "line_load": "line_load_setpoint",
            "roll_temperature": "roll_temperature_setpoint",
        }

    def forecast(self, inputs: Mapping[str, float], upstream: Upstream) -> dict[str, Forecast | str]:
        """Areal loading from the mass balance at the delivered feed; thickness from the compaction."""
        del upstream
        try:
            self.need(inputs, *BALANCE_INPUTS, "line_load", "roll_temperature")
        except Unpredictable as missing:
            return dict.fromkeys(self.quantities, str(missing))
        delivered = {**inputs, "powder_feed": self.delivered_feed(inputs["powder_feed"])}
        loading, loading_sigma = self._balance(delivered)
        used = {n: delivered[n] for n in (*BALANCE_INPUTS, "line_load", "roll_temperature")}
        outside = self.extrapolated(used)
        thickness, thickness_sigma = self._thickness(loading, inputs["line_load"], inputs["roll_temperature"])
        share = thickness / loading if loading else 0.0
        return {
            "areal_loading": Forecast(loading, loading_sigma, self.noise("areal_loading"), outside),
            "film_thickness": Forecast(
                thickness,
                math.hypot(thickness_sigma, share * loading_sigma),
                self.noise("film_thickness"),
                outside,
            ),
        }

    # ------------------------------------------------------------------ outputs and state
    def parameters(self) -> list[Parameter]:
        if not self.done:
            return []
        m = self.machine
        (a, b), (sa, sb) = self.balance.theta, self.balance.sigmas
        rho, c_q, c_t = (float(v) for v in self.compaction.theta)
        s_rho, s_q, s_t = (math.sqrt(max(float(v), 0.0)) for v in np.diag(self.compaction.covariance))
        sources = self.compaction.sources
        return [
            Parameter(m, "mass_balance_gain", float(a), float(sa), "1"),
            Parameter(m, "gauge_offset", float(b), float(sb), LOADING),
            Parameter(m, "feeder_efficiency", float(self.feeder.theta[0]), float(self.feeder.sigmas[0]), "1"),
            Parameter(m, "film_density", rho, s_rho, "g/cm3"),
            Parameter(m, "density_per_line_load", c_q, s_q, "g/cm3/(N/mm)", sources[1]),
            Parameter(m, "density_per_roll_temperature", c_t, s_t, "g/cm3/Cel", sources[2]),
        ]

    def physics_state(self) -> dict[str, Any]:
        return {
            "balance": self.balance.state(),
            "feeder": self.feeder.state(),
            "compaction": self.compaction.state(),
        }

    def load_physics(self, state: Mapping[str, Any]) -> None:
        self.balance = RecursiveLeastSquares.from_state(state["balance"])
        self.feeder = RecursiveLeastSquares.from_state(state["feeder"])
        self.compaction.load(state["compaction"])
