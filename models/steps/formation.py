"""Formation and aging: each cell's capacity against the loading of the roll position its electrode was
cut from (genealogy, upstream along the material flow), per-channel calibration CUSUMs, and K-values
against a median + k·MAD screening limit whose share of cells above it runs through a Bernoulli CUSUM.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import median
from typing import Any, ClassVar

import numpy as np

from core.records import ModelOutput, Parameter
from models.detectors import BernoulliCUSUM, make_detector, robust_location_scale
from models.physics import FormationModel, k_value_threshold
from models.rootcause import Finding
from models.steps.base import (
    Forecast,
    StepModel,
    StepSpec,
    Tuning,
    Unpredictable,
    Upstream,
    Values,
    load_detectors,
)

CHANNEL_SHIFT_SIGMAS = 4.0  # channel CUSUMs look for calibration errors, not each channel's static offset
# once a channel's static offset is known from its own first cells, a shift of this many within-channel σ
CHANNEL_DRIFT_SIGMAS = 2.0
CHANNEL_REFERENCE_CELLS = 8  # a channel's own cells (calibration ones included) that fix its static offset
K_SHARE_FLOOR = 0.01  # in-control share above the K-value limit: 48 calibration cells cannot show less
K_SHIFT_RATIO = 5.0  # the K-value CUSUM's design shift: five times the in-control share above the limit
COMMON_MODE_CELLS = 32  # recent cells whose median residual is the common mode a channel is judged against
ROLLS_KEPT = 64
CHANNEL_CELLS = 16  # recent cells per channel whose mean capacity is its offset against the others
LOADING = "dry_loading"  # the upstream role a cell's capacity follows


def _cell_chart(tuning: Tuning) -> str:
    """The chart of the per-cell detectors: cells are judged one by one, not as an autocorrelated
    series, so the prewhitened and two-scale choices are the plain CUSUM here."""
    return "cusum" if tuning.detector in ("arcusum", "twoscale") else tuning.detector


class FormationStep(StepModel):
    kind: ClassVar[str] = "formation"
    units: ClassVar[Mapping[str, str]] = {
        "charge_capacity": "Ah",
        "discharge_capacity": "Ah",
        "position_m": "m",
        "k_value": "mV/d",
    }
    required: ClassVar[tuple[str, ...]] = ("discharge_capacity",)
    consequential: ClassVar[frozenset[str]] = frozenset({"formation_drift", "upstream_loading"})
    consequence_only: ClassVar[frozenset[str]] = frozenset({"upstream_loading"})
    per_cell: ClassVar[bool] = True
    quantities: ClassVar[Mapping[str, str]] = {"cell_capacity": "discharge_capacity"}
    tolerance: ClassVar[Mapping[str, float]] = {"cell_capacity": 0.02}

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        self.formation = FormationModel(self.machine)
        self.done = False
        self.detectors: dict[str, Any] = {}
        self.cell_buffer: list[tuple[str, float, float, float]] = []
        self.cell_ref = (math.nan, math.nan, math.nan)  # capacity mean, residual σ, capacity σ
        self.cell_rolls: dict[str, list[str]] = {}
        self.channel_alarmed: set[str] = set()
        self.recent_residuals: list[float] = []
        # channel → its deviations from the common mode until CHANNEL_REFERENCE_CELLS fix its offset
        self.channel_reference: dict[str, list[float]] = {}
        self.channel_sigma = math.nan  # within-channel σ of a cell's deviation from the common mode
        self.k_buffer: list[float] = []
        self.k_limit = math.inf
        self.k_cusum: BernoulliCUSUM | None = None
        self.k_flagged: list[tuple[int, str]] = []  # (item, cell) above the limit since the CUSUM left 0
        self.k_start_ns = 0
        self.seen: dict[str, Values] = {}
        self.channel_capacity: dict[str, list[float]] = {}

    @property
    def calibrated(self) -> bool:
        return self.done

    def calibration_progress(self) -> str:
        return f"{len(self.cell_buffer)} of {self.tuning.calibration_cells} cells"

    def cell(self, time_ns: int, cell: str, channel: str, roll: str, values: Values) -> list[Finding]:
        """A cell's values as they arrive: formed (both capacities) or aged (its K-value)."""
        self.outputs = []
        seen = self.seen.setdefault(cell, {})
        seen.update(values)
        if "k_value" in values:
            self.seen.pop(cell, None)
            return self.add_k_value(time_ns, cell, channel, values["k_value"])
        if "discharge_capacity" in values and math.isfinite(values["discharge_capacity"]):
            recent = self.channel_capacity.setdefault(channel, [])
            recent.append(values["discharge_capacity"])
            del recent[:-CHANNEL_CELLS]
        if "charge_capacity" in seen and "discharge_capacity" in seen:
            charge, discharge = seen.pop("charge_capacity"), seen.pop("discharge_capacity")
            position = seen.get("position_m", math.nan)
            return self.add_cell(time_ns, cell, channel, roll, position, charge, discharge)
        return []

    def add_cell(
        self,
        time_ns: int,
        cell_id: str,
        channel: str,
        roll_id: str,
        position_m: float,
        charge_capacity: float,
        discharge_capacity: float,
    ) -> list[Finding]:
        """A formed cell: its capacity against the loading of its roll position (genealogy)."""
        self.outputs = []
        loading = self.upstream_value(LOADING, roll_id, position_m)
        self.cell_rolls.setdefault(roll_id, []).append(cell_id)
        if len(self.cell_rolls) > ROLLS_KEPT:
            self.cell_rolls.pop(next(iter(self.cell_rolls)))
        if not self.done:
            if not math.isfinite(loading):
                return []
            self.formation.calibrate(loading, discharge_capacity, charge_capacity)
            self.cell_buffer.append((channel, loading, discharge_capacity, charge_capacity))
            if len(self.cell_buffer) >= self.tuning.calibration_cells:
                self._calibrate_cells()
            return []
        expected, sigma = self.formation.predict(loading)
        m = self.machine
        self.outputs = [ModelOutput(m, "discharge_capacity", "predicted", expected, time_ns, sigma)]
        findings: list[Finding] = []
        residual = discharge_capacity / expected - 1 if math.isfinite(expected) else math.nan
        if math.isfinite(residual):
            self.outputs.append(ModelOutput(m, "discharge_capacity", "residual", residual, time_ns))
            detector = self.detectors.setdefault(
                channel,
                make_detector(
                    "cusum", self.tuning.cell_arl0, 0.0, self.cell_ref[1], delta=CHANNEL_SHIFT_SIGMAS
                ),
            )
            recent = self.recent_residuals
            deviation = residual - (float(np.median(recent)) if len(recent) >= 8 else 0.0)
            detector.update(deviation)
            if channel not in self.channel_alarmed:
                recent.append(residual)
                del recent[:-COMMON_MODE_CELLS]
                own = self._against_own_reference(channel, deviation)
                if own is not None and own.drift_detected:
                    detector = own
            if detector.drift_detected:
                self.channel_alarmed.add(channel)
                findings += self._cell_finding(
                    "cycler_channel_offset", detector, time_ns, channel=channel, relative=True
                )
            elif channel not in self.channel_alarmed:
                pooled = self.detectors["residual"]
                pooled.update(residual)
                if pooled.drift_detected:
                    findings += self._cell_finding("formation_drift", pooled, time_ns, relative=True)
        level = self.detectors["capacity"]
        if channel not in self.channel_alarmed:
            level.update(discharge_capacity)
            if level.drift_detected:
                findings += self._cell_finding("upstream_loading", level, time_ns)
        return findings

    def _against_own_reference(self, channel: str, deviation: float) -> Any:
        """The channel's CUSUM against its own static offset, once its first cells have fixed that offset.

        Every channel reads capacity through its own current calibration, so channels differ by a static
        offset comparable to a cell's noise; judged against the common mode alone (the 4σ CUSUM), a
        calibration drift must outgrow that spread. Against the channel's own first
        CHANNEL_REFERENCE_CELLS, a shift of CHANNEL_DRIFT_SIGMAS within-channel σ shows; its limit allows
        for the error of a reference mean of so few cells. Returns the armed detector, or None while the
        reference fills.
        """
        key = f"{channel}.own"
        if (detector := self.detectors.get(key)) is not None:
            detector.update(deviation)
            return detector
        if not math.isfinite(self.channel_sigma):  # too few calibration cells shared a channel
            return None
        reference = self.channel_reference.setdefault(channel, [])
        reference.append(deviation)
        if len(reference) >= CHANNEL_REFERENCE_CELLS:
            self.detectors[key] = make_detector(
                "cusum",
                self.tuning.cell_arl0,
                float(np.mean(reference)),
                self.channel_sigma,
                delta=CHANNEL_DRIFT_SIGMAS,
                reference_cells=len(reference),
            )
            del self.channel_reference[channel]
        return None

    def _calibrate_cells(self) -> None:
        residuals, capacities, channels = [], [], []
        for channel, loading, discharge, _ in self.cell_buffer:
            expected, _ = self.formation.predict(loading)
            capacities.append(discharge)
            if math.isfinite(expected):
                residuals.append(discharge / expected - 1)
                channels.append(channel)
        mean, cap_sigma = robust_location_scale(capacities)
        _, res_sigma = robust_location_scale(residuals) if len(residuals) >= 8 else (0.0, cap_sigma / mean)
        self._seed_channel_references(channels, residuals)
        self.cell_ref = (mean, res_sigma, cap_sigma)
        tuning = self.tuning
        self.detectors["residual"] = make_detector(_cell_chart(tuning), tuning.cell_arl0, 0.0, res_sigma)
        self.detectors["capacity"] = make_detector(_cell_chart(tuning), tuning.cell_arl0, mean, cap_sigma)
        self.scatter["discharge_capacity"] = cap_sigma
        self.cell_buffer = []
        self.done = True

    def _seed_channel_references(self, channels: list[str], residuals: list[float]) -> None:
        """The calibration cells start each channel's reference; their spread within channels is σ."""
        if not residuals:
            return
        common = float(np.median(residuals))
        by_channel: dict[str, list[float]] = {}
        for channel, residual in zip(channels, residuals, strict=True):
            by_channel.setdefault(channel, []).append(residual - common)
        squares = sum(float(np.sum((np.asarray(d) - np.mean(d)) ** 2)) for d in by_channel.values())
        dof = sum(len(d) - 1 for d in by_channel.values())
        if dof >= 8:
            self.channel_sigma = math.sqrt(squares / dof)
        self.channel_reference = by_channel

    def _cell_finding(
        self, cause: str, detector: Any, time_ns: int, channel: str | None = None, relative: bool = False
    ) -> list[Finding]:
        magnitude = detector.magnitude * (100 if relative else 1)
        statistic, threshold = detector.statistic, detector.threshold
        rolls: list[str] = []
        cells: list[str] = []
        detail = ""
        if cause == "upstream_loading":
            rolls = self._rolls_off_capacity()
            cells = [c for r in rolls for c in self.cell_rolls.get(r, [])]
            detail = f"Capacity shift across channels traced to roll(s) {', '.join(rolls) or 'unknown'}."
        return [
            Finding(
                line=self.line,
                machine=self.machine,
                signal="discharge_capacity",
                onset_ns=time_ns,
                magnitude=magnitude,
                unit="%" if relative else "Ah",
                cause=cause,
                confidence=0.85 if cause != "formation_drift" else 0.5,
                detector=f"{self.tuning.detector}:cells",
                statistic=statistic,
                threshold=threshold,
                time_ns=time_ns,
                channel=channel,
                rolls=rolls,
                cells=cells,
                detail=detail,
            )
        ]

    def _rolls_off_capacity(self) -> list[str]:
        """Rolls whose upstream loading sits beyond 3σ of the calibration capacity's loading equivalent."""
        mean, _, sigma = self.cell_ref
        gain = float(self.formation.capacity.theta[0])
        if not gain > 0:
            return []
        for step in self.upstream_order():
            means = step.roll_means(LOADING)
            if means:
                return [roll for roll, loading in means.items() if abs(gain * loading - mean) > 3 * sigma]
        return []

    def add_k_value(self, time_ns: int, cell_id: str, channel: str, k_value: float) -> list[Finding]:
        """A cell's K-value (mV/d) after aging: is it above median + k·MAD, and is that share rising?

        Each cell is judged as it arrives (Bernoulli CUSUM), so flags spread over many cells add up
        instead of being judged batch by batch.
        """
        del channel
        self.outputs = []
        if not math.isfinite(k_value):
            return []
        if len(self.k_buffer) < self.tuning.calibration_cells:
            self.k_buffer.append(k_value)
            if len(self.k_buffer) == self.tuning.calibration_cells:
                self._calibrate_k()
            return []
        cusum = self.k_cusum
        assert cusum is not None
        above = k_value > self.k_limit
        cusum.update(above)
        if cusum.n == cusum.start:
            self.k_start_ns = time_ns
        self.k_flagged = [(n, c) for n, c in self.k_flagged if n >= cusum.start]
        if above:
            self.k_flagged.append((cusum.n, cell_id))
        self.outputs = [
            ModelOutput(self.machine, "k_value", "threshold", self.k_limit, time_ns),
            ModelOutput(self.machine, "k_value", "statistic", cusum.statistic, time_ns),
        ]
        if not cusum.drift_detected:
            return []
        cells = [c for _, c in self.k_flagged]
        judged = cusum.n - cusum.start + 1
        finding = Finding(
            line=self.line,
            machine=self.machine,
            signal="k_value",
            onset_ns=self.k_start_ns,
            magnitude=100 * cusum.magnitude,
            unit="% of cells",
            cause="micro_short",
            confidence=0.8,
            detector="bernoulli-cusum:k_value",
            statistic=cusum.statistic,
            threshold=cusum.threshold,
            time_ns=time_ns,
            cells=cells,
            detail=(
                f"{len(cells)} of the last {judged} cells above the K-value limit {self.k_limit:.3g} mV/d "
                f"(in control {100 * cusum.p0:.2g} %)."
            ),
        )
        self.k_flagged = []
        return [finding]

    def _calibrate_k(self) -> None:
        """The screening limit from the calibration cells, and a CUSUM for a share K_SHIFT_RATIO× theirs."""
        self.k_limit = k_value_threshold(self.k_buffer, self.tuning.k_mad)
        share = max(float(np.mean(np.asarray(self.k_buffer) > self.k_limit)), K_SHARE_FLOOR)
        self.k_cusum = BernoulliCUSUM(self.tuning.cell_arl0, share, min(K_SHIFT_RATIO * share, 0.5))

    def upstream_order(self) -> list[StepModel]:
        """The upstream steps that coated the rolls this step's cells came from first (of an anode and a
        cathode coater, the one whose loading the capacity was calibrated against), then the others."""
        rolls = set(self.cell_rolls)

        def known(step: StepModel) -> int:
            return -len(rolls & set(step.roll_means(LOADING)))

        return sorted(self.spec.upstream, key=known)

    def forecast(self, inputs: Mapping[str, float], upstream: Upstream) -> dict[str, Forecast | str]:
        """A cell's capacity at the loading the upstream coater predicts."""
        del inputs
        if not self.done:
            return {"cell_capacity": f"cell model calibrating: {self.calibration_progress()}"}
        try:
            loading = upstream(LOADING)
        except Unpredictable as missing:
            return {"cell_capacity": str(missing)}
        capacity, capacity_sigma = self.formation.predict(loading.value)
        gain = float(self.formation.capacity.theta[0])
        return {
            "cell_capacity": Forecast(
                capacity,
                math.hypot(capacity_sigma, gain * loading.sigma_model),
                self.noise("discharge_capacity"),
                loading.extrapolated,
            )
        }

    # ------------------------------------------------------------------ outputs and state
    def parameters(self) -> list[Parameter]:
        estimates = self.formation.parameters() if self.done else []
        if math.isfinite(self.k_limit):
            estimates.append(Parameter(self.machine, "k_value_limit", self.k_limit, None, "mV/d"))
        return estimates

    def status(self, time_ns: int) -> list[ModelOutput]:
        """Each channel's mean capacity against the other channels' median: a calibration error shows."""
        filled = {ch: sum(v) / len(v) for ch, v in self.channel_capacity.items() if len(v) >= 3}
        if len(filled) < 2:
            return []
        reference = median(filled.values())
        return [
            ModelOutput(self.machine, f"{ch}_offset", "parameter", mean / reference - 1, time_ns)
            for ch, mean in sorted(filled.items())
        ]

    def statistics(self) -> dict[str, tuple[float, float]]:
        table = {key: (d.statistic, d.threshold) for key, d in self.detectors.items()}
        if self.k_cusum is not None:
            table["k_value"] = (self.k_cusum.statistic, self.k_cusum.threshold)
        return table

    def state(self) -> dict[str, Any]:
        return {
            **self._common_state(),
            "formation": self.formation.state(),
            "done": self.done,
            "detectors": {
                k: {"kind": type(d).__name__.lower(), **d.state()} for k, d in self.detectors.items()
            },
            "cell_buffer": self.cell_buffer,
            "cell_ref": list(self.cell_ref),
            "cell_rolls": self.cell_rolls,
            "channel_alarmed": sorted(self.channel_alarmed),
            "recent_residuals": self.recent_residuals,
            "channel_reference": self.channel_reference,
            "channel_sigma": self.channel_sigma if math.isfinite(self.channel_sigma) else None,
            "k_buffer": self.k_buffer,
            "k_limit": self.k_limit if math.isfinite(self.k_limit) else None,
            "k_cusum": self.k_cusum.state() if self.k_cusum is not None else None,
            "k_flagged": self.k_flagged,
            "k_start_ns": self.k_start_ns,
            "seen": self.seen,
            "channel_capacity": self.channel_capacity,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self._load_common(state)
        self.formation.load(state["formation"])
        self.done = bool(state["done"])
        self.detectors = load_detectors(state["detectors"])
        self.cell_buffer = [(str(c), float(a), float(b), float(d)) for c, a, b, d in state["cell_buffer"]]
        self.cell_ref = tuple(float(v) for v in state["cell_ref"])  # type: ignore[assignment]
        self.cell_rolls = {r: list(c) for r, c in state["cell_rolls"].items()}
        self.channel_alarmed = set(state["channel_alarmed"])
        self.recent_residuals = list(state["recent_residuals"])
        self.channel_reference = {c: list(d) for c, d in state["channel_reference"].items()}
        if state["channel_sigma"] is not None:
            self.channel_sigma = float(state["channel_sigma"])
        self.k_buffer = list(state["k_buffer"])
        self.k_limit = state["k_limit"] if state["k_limit"] is not None else math.inf
        if state["k_cusum"] is not None:
            self.k_cusum = BernoulliCUSUM()
            self.k_cusum.load(state["k_cusum"])
            self.k_flagged = [(int(n), str(c)) for n, c in state["k_flagged"]]
            self.k_start_ns = int(state["k_start_ns"])
        self.seen = {c: dict(v) for c, v in state["seen"].items()}
        self.channel_capacity = {c: list(v) for c, v in state["channel_capacity"].items()}
