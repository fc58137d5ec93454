"""Physics-informed models of coater, dryer, calender and formation, calibrated online from line data.

Each model keeps the law's structure from the literature (slot-die mass balance, first-order drying,
Meyer et al. 2017 compaction, C = m_A·A·x·q) and learns its coefficients with recursive least squares,
so every parameter comes with an uncertainty. Inputs are dicts of ``<signal>`` values of one machine in
the line's units (mL/min, m/min, mm, %, g/cm3, mg/cm2, N/mm, Cel, um, Ah).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.records import Parameter, Source
from models.calibration import RecursiveLeastSquares
from models.compaction import MIN_TEMPERATURE_SPAN, CompactionFit, anchored, identify, span

Values = dict[str, float]
SWEEP_SAMPLES = 20_000  # (q_L, T, ε) kept for identifying the compaction law, thinned 2:1 when full


def mass_balance_loading(flow: float, density: float, solids_pct: float, width: float, speed: float) -> float:
    """m_A (mg/cm2) = Q·ρ·w_s/(W·v) for Q mL/min, ρ g/cm3, w_s %, W mm, v m/min (all slurry on the web)."""
    return flow * density * solids_pct / (width * speed)


def _finite(values: Values, *names: str) -> bool:
    return all(math.isfinite(values.get(name, math.nan)) for name in names)


class CoaterModel:
    """Dry loading from the slot-die mass balance, m_A = a·Q·ρ·w_s/(W·v) + b.

    ``a`` absorbs what the mass balance does not know (delivered vs metered flow, edge loss), ``b`` the
    beta gauge's offset; the pump's delivered/set flow ratio (``pump_efficiency``) is learnt beside it.
    ``b`` has a tight prior around 0 because at one operating point a and b are collinear.
    """

    inputs = ("pump_flow", "slurry_density", "slurry_solids", "coating_width", "web_speed")

    def __init__(self, machine: str = "") -> None:
        self.machine = machine
        self.loading = RecursiveLeastSquares(2, prior=[1.0, 0.0])
        self.loading.p = np.diag([1.0, 0.05**2])
        self.pump = RecursiveLeastSquares(1, prior=[1.0])

    def features(self, values: Values) -> np.ndarray | None:
        if not _finite(values, *self.inputs):
            return None
        ideal = mass_balance_loading(*(values[name] for name in self.inputs))
        return np.array([ideal, 1.0])

    def calibrate(self, values: Values) -> None:
        phi = self.features(values)
        if phi is not None and _finite(values, "dry_loading"):
            self.loading.update(phi, values["dry_loading"])
        if _finite(values, "pump_flow", "pump_flow_setpoint") and values["pump_flow_setpoint"] > 0:
            self.pump.update([values["pump_flow_setpoint"]], values["pump_flow"])

    def predict(self, values: Values) -> tuple[float, float]:
        """Predicted dry loading and its parameter uncertainty (mg/cm2); NaN without inputs."""
        phi = self.features(values)
        if phi is None:
            return math.nan, math.nan
        return self.loading.predict(phi), self.loading.prediction_sigma(phi)

    def parameters(self) -> list[Parameter]:
        (a, b), (sa, sb) = self.loading.theta, self.loading.sigmas
        return [
            Parameter(self.machine, "mass_balance_gain", float(a), float(sa), "1"),
            Parameter(self.machine, "gauge_offset", float(b), float(sb), "mg/cm2"),
            Parameter(
                self.machine, "pump_efficiency", float(self.pump.theta[0]), float(self.pump.sigmas[0]), "1"
            ),
        ]

    def state(self) -> dict[str, Any]:
        return {"loading": self.loading.state(), "pump": self.pump.state()}

    def load(self, state: dict[str, Any]) -> None:
        self.loading = RecursiveLeastSquares.from_state(state["loading"])
        self.pump = RecursiveLeastSquares.from_state(state["pump"])


class DryerModel:
    """Residual solvent after first-order drying: ln r = θ₀ − θ₁·Σ_z T_z / v (dose ∝ temperature × time).

    The slope gets a weak prior (hotter or slower dries more) because at one recipe it is barely excited.
    """

    def __init__(self, machine: str = "", zones: tuple[str, ...] = ()) -> None:
        self.machine = machine
        #: the dryer's zone temperatures, whose sum over the web speed is the drying dose
        self.zones = zones
        self.fit = RecursiveLeastSquares(2, prior=[0.0, 0.0])
        self.dose_ref = math.nan

    def _dose(self, values: Values) -> float | None:
        if not _finite(values, *self.zones, "web_speed") or values["web_speed"] <= 0:
            return None
        return sum(values[z] for z in self.zones) / values["web_speed"]

    def calibrate(self, values: Values) -> None:
        dose = self._dose(values)
        r = values.get("residual_solvent", math.nan)
        if dose is None or not (math.isfinite(r) and r > 0):
            return
        if math.isnan(self.dose_ref):
            self.dose_ref = dose
            self.fit = RecursiveLeastSquares(2, prior=[math.log(r), -0.002])
            self.fit.p = np.diag([1.0, 0.001**2])
        self.fit.update([1.0, dose - self.dose_ref], math.log(r))

    def predict(self, values: Values) -> tuple[float, float]:
        dose = self._dose(values)
        if dose is None or math.isnan(self.dose_ref):
            return math.nan, math.nan
        phi = [1.0, dose - self.dose_ref]
        value = math.exp(self.fit.predict(phi))
        return value, value * self.fit.prediction_sigma(phi)

    def parameters(self) -> list[Parameter]:
        slope, sigma = float(self.fit.theta[1]), float(self.fit.sigmas[1])
        return [Parameter(self.machine, "drying_dose_coefficient", -slope, sigma, "min/(Cel·m)")]

    def state(self) -> dict[str, Any]:
        return {"fit": self.fit.state(), "dose_ref": self.dose_ref}

    def load(self, state: dict[str, Any]) -> None:
        self.fit = RecursiveLeastSquares.from_state(state["fit"])
        self.dose_ref = state["dose_ref"]


class CalenderModel:
    """Porosity and thickness after the nip from line load, roll temperature and incoming loading.

    Meyer et al. (2017): ε = ε_min + (ε₀ − ε_min)·exp(−q_L/γ_c), with γ_c(T) = γ_ref·exp(−β(T − T_ref)).
    At one line load only γ_c is identifiable, so ε₀ and ε_min start as domain priors (as coated ≈ 50 %,
    dense limit ≈ 15 %: DOMAIN.md ranges); each tick gives ln γ_c = ln(q_L / ln((ε₀ − ε_min)/(ε − ε_min))),
    and RLS learns ln γ_ref and β (weak prior β ≈ 0 until the roll temperature moves). When the calibration
    data span a range of line loads (a calender trial), ``identify`` fits ε₀, ε_min and γ_ref (and β if the
    roll temperature moved) by nonlinear least squares instead (``models.compaction``), and
    ``compaction_status`` says which of the two the law rests on.
    The skeletal density comes from the calender's own gauges: 10·m_A/h = ρ_true·(1 − ε).

    When the line load did not move, ``identify`` keeps ε₀ and ε_min as priors but anchors the law at the
    calibration's operating point (``models.compaction.anchored``), so their uncertainty widens predictions
    away from it. When the roll temperature did not move either, β is a prior too: the RLS slope would
    only fit the thermometer's noise, which is no temperature dependence at all.
    """

    prior_sigma = 0.025  # of ε₀ and ε_min as priors: DOMAIN.md's 45–55 % as-coated range as ±2σ
    # β as a prior: γ_c falls with roll temperature (DOMAIN.md), by 0–1 %/K taken as ±1σ around 0.5 %/K
    beta_prior = (0.005, 0.005)

    def __init__(self, machine: str = "", eps_0: float = 0.50, eps_min: float = 0.15) -> None:
        self.machine = machine
        self.eps_0 = eps_0
        self.eps_min = eps_min
        self.gamma = RecursiveLeastSquares(2, prior=[math.log(1000.0), 0.0])
        self.gamma.p = np.diag([1e4, 1.0])  # relative to the noise variance of ln γ (~1e-3)
        self.density = RecursiveLeastSquares(1, prior=[4.0])
        self.t_ref = math.nan
        self.samples: list[tuple[float, float, float]] = []
        self.sample_stride = 1
        self.samples_seen = 0
        self.fit: CompactionFit | None = None
        #: the law through the calibrated operating point, ε₀ and ε_min as priors (when ``fit`` is None)
        self.anchor: CompactionFit | None = None
        self.beta_source: Source = "data"
        self.compaction_status = "prior: not calibrated yet"

    def calibrate(self, values: Values) -> None:
        if not _finite(values, "line_load", "roll_temperature", "incoming_loading", "porosity", "thickness"):
            return
        eps = values["porosity"] / 100
        if math.isnan(self.t_ref):
            self.t_ref = values["roll_temperature"]
        self.density.update([1 - eps], 10 * values["incoming_loading"] / values["thickness"])
        self._remember((values["line_load"], values["roll_temperature"], eps))
        if self.eps_min < eps < self.eps_0 and values["line_load"] > 0:
            gamma = values["line_load"] / math.log((self.eps_0 - self.eps_min) / (eps - self.eps_min))
            self.gamma.update([1.0, -(values["roll_temperature"] - self.t_ref)], math.log(gamma))

    def _remember(self, sample: tuple[float, float, float]) -> None:
        """Keep every ``sample_stride``-th sample; when full, drop every other one and double the stride,
        so that a long calibration stays covered back to its start, where a trial usually runs."""
        if self.samples_seen % self.sample_stride == 0:
            self.samples.append(sample)
            if len(self.samples) >= SWEEP_SAMPLES:
                self.samples = self.samples[::2]
                self.sample_stride *= 2
        self.samples_seen += 1

    def identify(self) -> None:
        """At the end of calibration: fit the whole law if the calibration data identify it, else keep
        the priors; either way ``compaction_status`` says so."""
        load, temperature, eps = np.array(self.samples, dtype=float).reshape(-1, 3).T
        if span(temperature) >= MIN_TEMPERATURE_SPAN:
            beta, beta_sigma = float(self.gamma.theta[1]), float(self.gamma.sigmas[1])
            self.beta_source = "data"
        else:
            (beta, beta_sigma), self.beta_source = self.beta_prior, "prior"
        self.fit, self.compaction_status = identify(load, temperature, eps, self.t_ref, beta, beta_sigma)
        if self.fit is None:
            priors = (self.eps_0, self.eps_min, self.prior_sigma)
            self.anchor = anchored(load, temperature, eps, self.t_ref, priors, beta, beta_sigma)
        self.samples, self.sample_stride, self.samples_seen = [], 1, 0

    def _law(self) -> tuple[float, float, float, float, np.ndarray]:
        """(ε₀, ε_min, ln γ_ref, β) and their covariance: identified, anchored on priors, or (while still
        calibrating) priors with the RLS's γ and β."""
        law = self.fit if self.fit is not None else self.anchor
        if law is not None:
            return law.eps_0, law.eps_min, law.log_gamma_ref, law.beta, law.covariance
        covariance = np.zeros((4, 4))
        covariance[2:, 2:] = self.gamma.covariance
        log_gamma, beta = (float(v) for v in self.gamma.theta)
        return self.eps_0, self.eps_min, log_gamma, beta, covariance

    def predict(self, values: Values) -> dict[str, tuple[float, float]]:
        """Predicted porosity (%) and thickness (um) with parameter uncertainty."""
        if not _finite(values, "line_load", "roll_temperature", "incoming_loading") or math.isnan(self.t_ref):
            return {"porosity": (math.nan, math.nan), "thickness": (math.nan, math.nan)}
        eps_0, eps_min, log_gamma, beta, covariance = self._law()
        dt = values["roll_temperature"] - self.t_ref
        ratio = max(values["line_load"], 0.0) / math.exp(log_gamma - beta * dt)
        decay = math.exp(-ratio)
        eps = eps_min + (eps_0 - eps_min) * decay
        slope = (eps - eps_min) * ratio  # dε/d ln γ_c
        gradient = np.array([decay, 1 - decay, slope, -slope * dt])
        eps_sigma = math.sqrt(max(float(gradient @ covariance @ gradient), 0.0))
        rho, rho_sigma = float(self.density.theta[0]), float(self.density.sigmas[0])
        thickness = 10 * values["incoming_loading"] / (rho * (1 - eps))
        rel = math.hypot(rho_sigma / rho, eps_sigma / (1 - eps))
        return {"porosity": (100 * eps, 100 * eps_sigma), "thickness": (thickness, thickness * rel)}

    def parameters(self) -> list[Parameter]:
        eps_0, eps_min, log_gamma, beta, covariance = self._law()
        sigmas = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        gamma = math.exp(log_gamma)
        source: Source = "data" if self.fit is not None else "prior"
        eps_sigmas = sigmas[:2] if self.fit is not None else (self.prior_sigma, self.prior_sigma)
        m = self.machine
        return [
            Parameter(m, "rho_true", float(self.density.theta[0]), float(self.density.sigmas[0]), "g/cm3"),
            Parameter(m, "compaction_resistance", gamma, gamma * float(sigmas[2]), "N/mm"),
            Parameter(
                m, "compaction_temperature_coefficient", beta, float(sigmas[3]), "1/Cel", self.beta_source
            ),
            Parameter(m, "porosity_as_coated", 100 * eps_0, 100 * float(eps_sigmas[0]), "%", source),
            Parameter(m, "porosity_limit", 100 * eps_min, 100 * float(eps_sigmas[1]), "%", source),
        ]

    def state(self) -> dict[str, Any]:
        return {
            "eps_0": self.eps_0,
            "eps_min": self.eps_min,
            "gamma": self.gamma.state(),
            "density": self.density.state(),
            "t_ref": self.t_ref,
            "samples": self.samples,
            "sample_stride": self.sample_stride,
            "samples_seen": self.samples_seen,
            "fit": self.fit.state() if self.fit is not None else None,
            "anchor": self.anchor.state() if self.anchor is not None else None,
            "beta_source": self.beta_source,
            "compaction_status": self.compaction_status,
        }

    def load(self, state: dict[str, Any]) -> None:
        self.eps_0, self.eps_min, self.t_ref = state["eps_0"], state["eps_min"], state["t_ref"]
        self.gamma = RecursiveLeastSquares.from_state(state["gamma"])
        self.density = RecursiveLeastSquares.from_state(state["density"])
        self.samples = [(q, t, eps) for q, t, eps in state["samples"]]
        self.sample_stride = state["sample_stride"]
        self.samples_seen = state["samples_seen"]
        self.fit = CompactionFit.from_state(state["fit"]) if state["fit"] is not None else None
        self.anchor = CompactionFit.from_state(state["anchor"]) if state["anchor"] is not None else None
        self.beta_source = state["beta_source"]
        self.compaction_status = state["compaction_status"]


class FormationModel:
    """Expected cell capacity from the loading of the roll its cathode was cut from: C = c·m_A.

    c (Ah per mg/cm2) lumps sheet area × active fraction × specific capacity; the first-cycle efficiency
    is discharge/charge capacity, learnt as its mean with uncertainty.
    """

    def __init__(self, machine: str = "") -> None:
        self.machine = machine
        self.capacity = RecursiveLeastSquares(1, prior=[0.0])
        self.efficiency = RecursiveLeastSquares(1, prior=[0.88])

    def calibrate(self, loading: float, discharge: float, charge: float | None = None) -> None:
        if math.isfinite(loading) and math.isfinite(discharge) and loading > 0:
            self.capacity.update([loading], discharge)
        if charge is not None and math.isfinite(charge) and charge > 0 and math.isfinite(discharge):
            self.efficiency.update([1.0], discharge / charge)

    def predict(self, loading: float) -> tuple[float, float]:
        if not math.isfinite(loading) or self.capacity.count == 0:
            return math.nan, math.nan
        return self.capacity.predict([loading]), self.capacity.prediction_sigma([loading])

    def parameters(self) -> list[Parameter]:
        return [
            Parameter(
                self.machine,
                "capacity_per_loading",
                float(self.capacity.theta[0]),
                float(self.capacity.sigmas[0]),
                "Ah/(mg/cm2)",
            ),
            Parameter(
                self.machine,
                "first_cycle_efficiency",
                float(self.efficiency.theta[0]),
                float(self.efficiency.sigmas[0]),
                "1",
            ),
        ]

    def state(self) -> dict[str, Any]:
        return {"capacity": self.capacity.state(), "efficiency": self.efficiency.state()}

    def load(self, state: dict[str, Any]) -> None:
        self.capacity = RecursiveLeastSquares.from_state(state["capacity"])
        self.efficiency = RecursiveLeastSquares.from_state(state["efficiency"])


def k_value_threshold(k_values: Any, k: float = 5.0) -> float:
    """Self-discharge screening limit of a batch: median + k·MAD (scaled to σ), robust to the tail itself."""
    data = np.asarray(k_values, dtype=float)
    data = data[np.isfinite(data)]
    if data.size == 0:
        return math.inf
    median = float(np.median(data))
    return median + k * 1.4826 * float(np.median(np.abs(data - median)))
