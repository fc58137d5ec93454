"""The streaming line model the twin wraps: samples in, predictions, residuals and findings out.

Per machine it buffers an initial in-control period (``calibration_s``), calibrates the physics models
on it (RLS), derives structured features (measurement − physics prediction, actuator − setpoint, key
levels), takes each feature's in-control mean and σ from the same period (median, MAD), and from then
on runs one drift detector per feature (limits from ``arl0``) plus a PCA T²/SPE monitor over the
machine's signals. An alarm is classified by the pattern of features moving at that time
(``models.rootcause``) into a ``Finding``. Cells are judged against the loading of the roll position
their cathode was cut from (genealogy); K-values against a median + k·MAD screening limit, whose
share of cells above it runs through a Bernoulli CUSUM.

All state is plain data: ``snapshot()`` returns a JSON-able dict and ``restore()`` resumes from it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.sample import Sample
from models.detectors import BernoulliCUSUM, make_detector, robust_location_scale
from models.ml import ResidualRegressor
from models.pca import PCAMonitor
from models.physics import CalenderModel, CoaterModel, DryerModel, Estimate, FormationModel, k_value_threshold
from models.rootcause import Finding, classify_calender, classify_coater

COATER, CALENDER, CYCLER = "coater1", "calender1", "cycler1"
ZONES = (1, 2, 3)
ROLL_BIN_M = 10.0
LEVEL_FEATURES = {"dry_loading": 2.0, "slurry_density": 2.0, "incoming_loading": 2.0}  # design shift, σ
CHANNEL_SHIFT_SIGMAS = 4.0  # channel CUSUMs look for calibration errors, not each channel's static offset
# once a channel's static offset is known from its own first cells, a shift of this many within-channel σ
CHANNEL_DRIFT_SIGMAS = 2.0
CHANNEL_REFERENCE_CELLS = 8  # a channel's own cells (calibration ones included) that fix its static offset
K_SHARE_FLOOR = 0.01  # in-control share above the K-value limit: 48 calibration cells cannot show less
K_SHIFT_RATIO = 5.0  # the K-value CUSUM's design shift: five times the in-control share above the limit
#: Bumped when the model's state gains what an older snapshot cannot supply (2: channel references;
#: 3: calibrated ranges and the compaction law anchored on its priors)
SNAPSHOT_VERSION = 3
RANGE_PERCENTILES = (0.5, 99.5)  # a signal's calibrated range, without its rarest spikes
COMMON_MODE_CELLS = 32  # recent cells whose median residual is the common mode a channel is judged against
# alarms that follow from a coater fault already raised (ISA-18.2 consequential alarms)
CONSEQUENTIAL = {(CALENDER, "upstream_loading"), (CYCLER, "formation_drift")}
ELIMINATION_CAUSES = ("gauge_bias", "load_cell_bias", "upstream_loading")
# signals no physics model uses: the residual regressors may learn from them (models.ml)
ML_CONTEXT = {COATER: ["web_tension", "slot_gap"], CALENDER: ["speed"]}
ML_TARGETS = ("dry_loading_residual", "residual_solvent", "thickness_residual", "porosity_residual")

UNITS = {
    "pump_flow_deviation": "mL/min",
    "web_speed_deviation": "m/min",
    "dry_loading_residual": "mg/cm2",
    "dry_loading": "mg/cm2",
    "slurry_density": "g/cm3",
    "residual_solvent": "%",
    **{f"dryer_zone{z}_deviation": "Cel" for z in ZONES},
    "roll_temperature_deviation": "Cel",
    "line_load_deviation": "N/mm",
    "thickness_residual": "um",
    "porosity_residual": "%",
    "incoming_loading": "mg/cm2",
}


@dataclass(frozen=True, slots=True)
class ModelValue:
    """One model output for the twin's ``model`` measurement (kind: predicted, residual, statistic, ...)."""

    machine: str
    signal: str
    kind: str
    value: float
    time_ns: int
    sigma: float | None = None


def _get(values: Mapping[str, float], name: str) -> float:
    value = values.get(name, math.nan)
    return float(value) if value is not None else math.nan


class LineModel:
    """Models and detectors of one line, fed tick by tick (``update_tick``) or sample by sample."""

    def __init__(
        self,
        line: str = "line1",
        *,
        arl0: float = 1e6,
        cell_arl0: float = 1e4,
        calibration_s: float = 2700.0,
        calibration_cells: int = 48,
        detector: str = "cusum",
        memory_s: float = 3600.0,
        confirm_s: float = 120.0,
        realarm_s: float = 8 * 3600.0,
        k_mad: float = 5.0,
        pca_findings: bool = False,
    ) -> None:
        self.line = line
        self.arl0 = arl0
        self.cell_arl0 = cell_arl0
        self.calibration_s = calibration_s
        self.calibration_cells = calibration_cells
        self.detector_kind = detector
        self.memory_s = memory_s
        self.confirm_s = confirm_s
        self.realarm_s = realarm_s
        self.k_mad = k_mad
        self.pca_findings = pca_findings
        self.coater = CoaterModel()
        self.dryer = DryerModel()
        self.calender = CalenderModel()
        self.formation = FormationModel()
        self.buffers: dict[str, list[tuple[int, dict[str, float]]]] = {COATER: [], CALENDER: []}
        self.calibrated: dict[str, bool] = {COATER: False, CALENDER: False, CYCLER: False}
        self.detectors: dict[str, Any] = {}
        self.pca: dict[str, PCAMonitor] = {}
        self.ml: dict[str, ResidualRegressor] = {}
        self.ticks: dict[str, int] = {COATER: 0, CALENDER: 0}
        self.tick_ns: dict[str, float] = {COATER: 1e9, CALENDER: 1e9}
        self.last_ns: dict[str, int] = {}
        self.last_alarm_ns: dict[str, int] = {}
        self.emitted_ns: dict[str, int] = {}
        self.pending: list[dict[str, Any]] = []
        self.outputs: list[ModelValue] = []
        self.current: dict[str, dict[str, float]] = {COATER: {}, CALENDER: {}}
        #: machine -> signal -> (low, high) seen during calibration: beyond it a prediction extrapolates
        self.ranges: dict[str, dict[str, tuple[float, float]]] = {}
        #: machine -> signal -> robust σ of its readings during calibration: in-control scatter
        self.scatter: dict[str, dict[str, float]] = {}
        self.current_roll: dict[str, str] = {}
        self.roll_loading: dict[str, dict[str, list[float]]] = {}
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
        self._pending_tick: dict[str, tuple[int, dict[str, float]]] = {}
        self._cells_seen: dict[str, dict[str, float]] = {}
        self.history: dict[str, deque[dict[str, float]]] = {}

    # ------------------------------------------------------------------ input
    def observe(self, samples: Iterable[Sample]) -> list[Finding]:
        """Fold in normalised samples; a machine's tick is processed when its next tick begins."""
        findings: list[Finding] = []
        for s in samples:
            if s.machine == CYCLER:
                findings += self._cycler_sample(s)
                continue
            if s.machine not in self.current:
                continue
            pending = self._pending_tick.get(s.machine)
            if pending is not None and pending[0] != s.source_time_ns:
                findings += self.update_tick(
                    pending[0], {f"{s.machine}.{k}": v for k, v in pending[1].items()}
                )
                pending = None
            if pending is None:
                pending = (s.source_time_ns, {})
                self._pending_tick[s.machine] = pending
            pending[1][s.signal] = s.value
            if s.roll_id:
                self.current_roll[s.machine] = s.roll_id
        return findings

    def _cycler_sample(self, s: Sample) -> list[Finding]:
        cell = self._cells_seen.setdefault(s.cell_id or "", {}) if s.cell_id else None
        if cell is None:
            return []
        cell[s.signal] = s.value
        if s.signal == "k_value":
            self._cells_seen.pop(s.cell_id or "", None)
            return self.add_k_value(s.source_time_ns, s.cell_id or "", s.channel or "", s.value)
        if "charge_capacity" in cell and "discharge_capacity" in cell:
            position = cell.get("position_m", math.nan)
            findings = self.add_cell(
                s.source_time_ns,
                s.cell_id or "",
                s.channel or "",
                s.roll_id or "",
                position,
                cell["charge_capacity"],
                cell["discharge_capacity"],
            )
            cell.pop("charge_capacity")
            cell.pop("discharge_capacity")
            return findings
        return []

    def update_tick(self, time_ns: int, values: Mapping[str, Any]) -> list[Finding]:
        """One plant tick: ``values`` maps ``<machine>.<signal>`` to floats, ``<machine>.roll_id`` to text."""
        self.outputs = []
        findings: list[Finding] = []
        per_machine: dict[str, dict[str, float]] = {COATER: {}, CALENDER: {}}
        for column, value in values.items():
            machine, _, signal = column.partition(".")
            if machine not in per_machine:
                continue
            if signal == "roll_id":
                self.current_roll[machine] = str(value)
            elif isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool):
                per_machine[machine][signal] = float(value)
        for machine, data in per_machine.items():
            if data:
                findings += self._machine_tick(machine, time_ns, data)
        return findings

    # --------------------------------------------------------------- machines
    def _machine_tick(self, machine: str, time_ns: int, data: dict[str, float]) -> list[Finding]:
        if machine in self.last_ns:
            dt = time_ns - self.last_ns[machine]
            if dt > 0:
                self.tick_ns[machine] += 0.01 * (dt - self.tick_ns[machine])
        self.last_ns[machine] = time_ns
        self.current[machine] = data
        if machine == COATER:
            self._record_roll_loading(data)
        if not self.calibrated[machine]:
            buffer = self.buffers[machine]
            buffer.append((time_ns, data))
            if (time_ns - buffer[0][0]) / 1e9 >= self.calibration_s:
                self._calibrate(machine)
            return []
        self.ticks[machine] += 1
        features = self._features(machine, data)
        self.history.setdefault(machine, deque(maxlen=int(self.memory_s))).append(features)
        findings: list[Finding] = []
        for name, value in features.items():
            detector = self.detectors.get(f"{machine}.{name}")
            if detector is None or not math.isfinite(value):
                continue
            detector.update(value)
            self.outputs.append(ModelValue(machine, name, "statistic", detector.statistic, time_ns))
            self.outputs.append(ModelValue(machine, name, "threshold", detector.threshold, time_ns))
            if detector.drift_detected:
                findings += self._alarm(machine, name, detector, time_ns)
        monitor = self.pca.get(machine)
        if monitor is not None:
            row = [data.get(s, math.nan) for s in monitor.signals]
            monitor.update(row)
            self.outputs.append(ModelValue(machine, "pca", "statistic", monitor.statistic, time_ns))
            if monitor.drift_detected:
                findings += self._pca_alarm(machine, monitor, time_ns) if self.pca_findings else []
                monitor.reset()
        findings += self._due(machine, time_ns)
        return findings

    def _features(self, machine: str, v: dict[str, float]) -> dict[str, float]:
        t = self.last_ns.get(machine, 0)
        if machine == COATER:
            loading, loading_sigma = self.coater.predict(v)
            solvent, solvent_sigma = self.dryer.predict(v)
            self.outputs += [
                ModelValue(machine, "dry_loading", "predicted", loading, t, loading_sigma),
                ModelValue(machine, "residual_solvent", "predicted", solvent, t, solvent_sigma),
            ]
            features = {
                "pump_flow_deviation": _get(v, "pump_flow")
                - float(self.coater.pump.theta[0]) * _get(v, "pump_flow_setpoint"),
                "web_speed_deviation": _get(v, "web_speed") - _get(v, "web_speed_setpoint"),
                "dry_loading_residual": _get(v, "dry_loading") - loading,
                "dry_loading": _get(v, "dry_loading"),
                "slurry_density": _get(v, "slurry_density"),
                "residual_solvent": _get(v, "residual_solvent") - solvent,
            }
            for z in ZONES:
                features[f"dryer_zone{z}_deviation"] = _get(v, f"dryer_zone{z}_temperature") - _get(
                    v, f"dryer_zone{z}_setpoint"
                )
        else:
            predicted = self.calender.predict(v)
            for signal, (value, sigma) in predicted.items():
                self.outputs.append(ModelValue(machine, signal, "predicted", value, t, sigma))
            features = {
                "roll_temperature_deviation": _get(v, "roll_temperature")
                - _get(v, "roll_temperature_setpoint"),
                "line_load_deviation": _get(v, "line_load") - _get(v, "line_load_setpoint"),
                "thickness_residual": _get(v, "thickness") - predicted["thickness"][0],
                "porosity_residual": _get(v, "porosity") - predicted["porosity"][0],
                "incoming_loading": _get(v, "incoming_loading"),
            }
        for name in ML_TARGETS:
            regressor = self.ml.get(f"{machine}.{name}")
            if regressor is not None and name in features:
                features[name] -= regressor.predict(v)
        for name, value in features.items():
            if name.endswith(("_residual", "_deviation")) and math.isfinite(value):
                self.outputs.append(ModelValue(machine, name, "residual", value, t))
        return features

    def _calibrate(self, machine: str) -> None:
        """Fit the machine's physics on its in-control buffer, then the detectors' mean, σ and limits."""
        buffer = self.buffers[machine]
        for _, data in buffer:
            if machine == COATER:
                self.coater.calibrate(data)
                self.dryer.calibrate(data)
            else:
                self.calender.calibrate(data)
        if machine == CALENDER:
            self.calender.identify()
        rows = []
        for time_ns, data in buffer:
            self.last_ns[machine] = time_ns
            rows.append(self._features(machine, data))
        self.outputs = []
        context = ML_CONTEXT[machine]
        x = np.array([[data.get(c, math.nan) for c in context] for _, data in buffer], dtype=float)
        for name in ML_TARGETS:
            if name in rows[0]:
                regressor = ResidualRegressor(context).fit(x, [row[name] for row in rows])
                self.ml[f"{machine}.{name}"] = regressor
                for row, (_, data) in zip(rows, buffer, strict=True):
                    row[name] -= regressor.predict(data)
        for name in rows[0]:
            series = np.array([row[name] for row in rows], dtype=float)
            if np.isfinite(series).sum() < 30:
                continue
            mu, sigma = robust_location_scale(series)
            key = f"{machine}.{name}"
            options = (
                {"delta": LEVEL_FEATURES[name]}
                if self.detector_kind == "cusum" and name in LEVEL_FEATURES
                else {}
            )
            self.detectors[key] = make_detector(self.detector_kind, self.arl0, mu, sigma, **options)
        signals = sorted(
            s
            for s in buffer[0][1]
            if not s.endswith("setpoint")
            and not s.endswith("position")
            and np.nanstd([d.get(s, math.nan) for _, d in buffer]) > 0
        )
        matrix = np.array([[d.get(s, math.nan) for s in signals] for _, d in buffer], dtype=float)
        if len(signals) >= 2 and np.isfinite(matrix).all(axis=1).sum() > 10 * len(signals):
            self.pca[machine] = PCAMonitor(signals, arl0=self.arl0).fit(matrix)
        self.ranges[machine], self.scatter[machine] = _spread(buffer)
        self.buffers[machine] = []
        self.calibrated[machine] = True

    def calibration_progress(self, machine: str) -> str:
        """How far a machine's calibration is, for an operator ("31 of 45 plant minutes")."""
        if machine == CYCLER:
            return f"{len(self.cell_buffer)} of {self.calibration_cells} cells"
        buffer = self.buffers.get(machine, [])
        done = (buffer[-1][0] - buffer[0][0]) / 60e9 if buffer else 0.0
        return f"{done:.0f} of {self.calibration_s / 60:.0f} plant minutes"

    def _onset_ns(self, machine: str, detector: Any, time_ns: int) -> int:
        onset = detector.onset if detector.onset is not None else detector.n
        back = detector.n - onset
        return int(time_ns - back * self.tick_ns[machine])

    def _moving(self, machine: str, onset_ns: int, time_ns: int) -> set[str]:
        """Features whose mean since the onset differs from in-control by more than 5 standard errors."""
        history = self.history.get(machine)
        if not history:
            return set()
        n = int(min(max((time_ns - onset_ns) / self.tick_ns[machine], 30), len(history)))
        recent = list(history)[-n:]
        moving = set()
        for name in recent[-1]:
            detector = self.detectors.get(f"{machine}.{name}")
            values = np.array([row[name] for row in recent], dtype=float)
            values = values[np.isfinite(values)]
            if detector is None or values.size < 10:
                continue
            z = (values.mean() - detector.mu) / (detector.sigma / math.sqrt(values.size))
            if abs(z) > 5:
                moving.add(name)
        return moving

    def _alarm(self, machine: str, name: str, detector: Any, time_ns: int) -> list[Finding]:
        key = f"{machine}.{name}"
        self.last_alarm_ns[key] = time_ns
        item = {
            "machine": machine,
            "feature": name,
            "onset_ns": self._onset_ns(machine, detector, time_ns),
            "magnitude": detector.magnitude,
            "statistic": detector.statistic,
            "threshold": detector.threshold,
            "due_ns": time_ns,
        }
        detector.reset()
        if name == "residual_solvent" and item["magnitude"] < 0:
            return []
        finding = self._classify(item, time_ns)
        if finding is None:
            return []
        if finding.cause in ELIMINATION_CAUSES and self.confirm_s > 0:
            item["due_ns"] = time_ns + int(self.confirm_s * 1e9)
            self.pending.append(item)
            return []
        return self._emit(finding)

    def _due(self, machine: str, time_ns: int) -> list[Finding]:
        due = [p for p in self.pending if p["machine"] == machine and p["due_ns"] <= time_ns]
        self.pending = [p for p in self.pending if p not in due]
        findings: list[Finding] = []
        for item in due:
            finding = self._classify(item, time_ns)
            if finding is not None:
                findings += self._emit(finding)
        return findings

    def _classify(self, item: dict[str, Any], time_ns: int) -> Finding | None:
        machine, name = item["machine"], item["feature"]
        moving = self._moving(machine, item["onset_ns"], time_ns) | {name}
        verdict = classify_coater(moving, name) if machine == COATER else classify_calender(moving, name)
        if verdict is None:
            return None
        cause, signal, confidence = verdict
        detail = f"Detected on {name}; also moving: {', '.join(sorted(moving - {name})) or 'nothing else'}."
        return Finding(
            line=self.line,
            machine=machine,
            signal=signal,
            onset_ns=item["onset_ns"],
            magnitude=item["magnitude"],
            unit=UNITS.get(name, ""),
            cause=cause,
            confidence=confidence,
            detector=f"{self.detector_kind}:{name}",
            statistic=item["statistic"],
            threshold=item["threshold"],
            time_ns=time_ns,
            rolls=[self.current_roll[machine]] if machine in self.current_roll else [],
            detail=detail,
        )

    def _emit(self, finding: Finding) -> list[Finding]:
        """Raise a finding once per condition; consequences of an active coater finding stay quiet."""
        if (finding.machine, finding.cause) in CONSEQUENTIAL and any(
            key.split("/")[1] == COATER and finding.time_ns - t < self.realarm_s * 1e9
            for key, t in self.emitted_ns.items()
        ):
            return []
        last = self.emitted_ns.get(finding.key)
        if last is not None and finding.time_ns - last < self.realarm_s * 1e9:
            return []
        self.emitted_ns[finding.key] = finding.time_ns
        return [finding]

    def _pca_alarm(self, machine: str, monitor: PCAMonitor, time_ns: int) -> list[Finding]:
        contributions = monitor.contributions()
        top = max(contributions, key=lambda s: contributions[s])
        statistic = monitor.statistic
        monitor.reset()
        if (
            time_ns
            - max((t for k, t in self.last_alarm_ns.items() if k.startswith(machine)), default=-(10**30))
            <= self.memory_s * 1e9
        ):
            return []
        listed = ", ".join(
            f"{s} {c:.0%}" for s, c in sorted(contributions.items(), key=lambda kv: -kv[1])[:3]
        )
        return self._emit(
            Finding(
                line=self.line,
                machine=machine,
                signal=top,
                onset_ns=time_ns,
                magnitude=statistic,
                unit="x limit",
                cause="correlation_break",
                confidence=0.3,
                detector="pca",
                statistic=statistic,
                threshold=1.0,
                time_ns=time_ns,
                detail=f"PCA T²/SPE out of limits; contributions: {listed}.",
            )
        )

    # ----------------------------------------------------------------- cells
    def _record_roll_loading(self, data: dict[str, float]) -> None:
        roll = self.current_roll.get(COATER)
        loading, position = data.get("dry_loading", math.nan), data.get("roll_position", math.nan)
        if roll is None or not (math.isfinite(loading) and math.isfinite(position)):
            return
        bins = self.roll_loading.setdefault(roll, {})
        entry = bins.setdefault(str(int(position // ROLL_BIN_M)), [0.0, 0.0])
        entry[0] += loading
        entry[1] += 1
        if len(self.roll_loading) > 64:
            self.roll_loading.pop(next(iter(self.roll_loading)))

    def roll_position_loading(self, roll_id: str, position_m: float) -> float:
        """Mean coater gauge loading where this roll position was coated (NaN when never seen)."""
        bins = self.roll_loading.get(roll_id)
        if not bins:
            return math.nan
        if math.isfinite(position_m) and (entry := bins.get(str(int(position_m // ROLL_BIN_M)))):
            return entry[0] / entry[1]
        total = sum(e[0] for e in bins.values())
        return total / sum(e[1] for e in bins.values())

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
        loading = self.roll_position_loading(roll_id, position_m)
        self.cell_rolls.setdefault(roll_id, []).append(cell_id)
        if len(self.cell_rolls) > 64:
            self.cell_rolls.pop(next(iter(self.cell_rolls)))
        if not self.calibrated[CYCLER]:
            if not math.isfinite(loading):
                return []
            self.formation.calibrate(loading, discharge_capacity, charge_capacity)
            self.cell_buffer.append((channel, loading, discharge_capacity, charge_capacity))
            if len(self.cell_buffer) >= self.calibration_cells:
                self._calibrate_cells()
            return []
        expected, sigma = self.formation.predict(loading)
        self.outputs = [ModelValue(CYCLER, "discharge_capacity", "predicted", expected, time_ns, sigma)]
        findings: list[Finding] = []
        residual = discharge_capacity / expected - 1 if math.isfinite(expected) else math.nan
        if math.isfinite(residual):
            self.outputs.append(ModelValue(CYCLER, "discharge_capacity", "residual", residual, time_ns))
            detector = self.detectors.setdefault(
                f"{CYCLER}.{channel}",
                make_detector("cusum", self.cell_arl0, 0.0, self.cell_ref[1], delta=CHANNEL_SHIFT_SIGMAS),
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
                pooled = self.detectors[f"{CYCLER}.residual"]
                pooled.update(residual)
                if pooled.drift_detected:
                    findings += self._cell_finding("formation_drift", pooled, time_ns, relative=True)
        level = self.detectors[f"{CYCLER}.capacity"]
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
        key = f"{CYCLER}.{channel}.own"
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
                self.cell_arl0,
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
        self.detectors[f"{CYCLER}.residual"] = make_detector(
            self.detector_kind, self.cell_arl0, 0.0, res_sigma
        )
        self.detectors[f"{CYCLER}.capacity"] = make_detector(
            self.detector_kind, self.cell_arl0, mean, cap_sigma
        )
        self.cell_buffer = []
        self.calibrated[CYCLER] = True

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
        detector.reset()
        rolls: list[str] = []
        cells: list[str] = []
        detail = ""
        if cause == "upstream_loading":
            rolls = self._rolls_off_capacity()
            cells = [c for r in rolls for c in self.cell_rolls.get(r, [])]
            detail = f"Capacity shift across channels traced to roll(s) {', '.join(rolls) or 'unknown'}."
        finding = Finding(
            line=self.line,
            machine=CYCLER,
            signal="discharge_capacity",
            onset_ns=time_ns,
            magnitude=magnitude,
            unit="%" if relative else "Ah",
            cause=cause,
            confidence=0.85 if cause != "formation_drift" else 0.5,
            detector=f"{self.detector_kind}:cells",
            statistic=statistic,
            threshold=threshold,
            time_ns=time_ns,
            channel=channel,
            rolls=rolls,
            cells=cells,
            detail=detail,
        )
        return self._emit(finding)

    def _rolls_off_capacity(self) -> list[str]:
        """Rolls whose coater loading sits beyond 3σ of the calibration capacity's loading equivalent."""
        mean, _, sigma = self.cell_ref
        gain = float(self.formation.capacity.theta[0])
        if not gain > 0:
            return []
        rolls = []
        for roll, bins in self.roll_loading.items():
            count = sum(e[1] for e in bins.values())
            loading = sum(e[0] for e in bins.values()) / count
            if abs(gain * loading - mean) > 3 * sigma:
                rolls.append(roll)
        return rolls

    def add_k_value(self, time_ns: int, cell_id: str, channel: str, k_value: float) -> list[Finding]:
        """A cell's K-value (mV/d) after aging: is it above median + k·MAD, and is that share rising?

        Each cell is judged as it arrives (Bernoulli CUSUM), so flags spread over many cells add up
        instead of being judged batch by batch.
        """
        if not math.isfinite(k_value):
            return []
        if len(self.k_buffer) < self.calibration_cells:
            self.k_buffer.append(k_value)
            if len(self.k_buffer) == self.calibration_cells:
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
            ModelValue(CYCLER, "k_value", "threshold", self.k_limit, time_ns),
            ModelValue(CYCLER, "k_value", "statistic", cusum.statistic, time_ns),
        ]
        if not cusum.drift_detected:
            return []
        cells = [c for _, c in self.k_flagged]
        judged = cusum.n - cusum.start + 1
        finding = Finding(
            line=self.line,
            machine=CYCLER,
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
        cusum.reset()
        self.k_flagged = []
        return self._emit(finding)

    def _calibrate_k(self) -> None:
        """The screening limit from the calibration cells, and a CUSUM for a share K_SHIFT_RATIO× theirs."""
        self.k_limit = k_value_threshold(self.k_buffer, self.k_mad)
        share = max(float(np.mean(np.asarray(self.k_buffer) > self.k_limit)), K_SHARE_FLOOR)
        self.k_cusum = BernoulliCUSUM(self.cell_arl0, share, min(K_SHIFT_RATIO * share, 0.5))

    # --------------------------------------------------------------- outputs
    def parameters(self) -> list[Estimate]:
        estimates = []
        if self.calibrated[COATER]:
            estimates += self.coater.parameters() + self.dryer.parameters()
        if self.calibrated[CALENDER]:
            estimates += self.calender.parameters()
        if self.calibrated[CYCLER]:
            estimates += self.formation.parameters()
        if math.isfinite(self.k_limit):
            estimates.append(Estimate(CYCLER, "k_value_limit", self.k_limit, math.nan, "mV/d"))
        return estimates

    def statistics(self) -> dict[str, tuple[float, float]]:
        """Every detector's current statistic and threshold, by ``<machine>.<feature>``."""
        table = {key: (d.statistic, d.threshold) for key, d in self.detectors.items()}
        table |= {f"{m}.pca": (p.statistic, p.threshold) for m, p in self.pca.items()}
        if self.k_cusum is not None:
            table[f"{CYCLER}.k_value"] = (self.k_cusum.statistic, self.k_cusum.threshold)
        return table

    # -------------------------------------------------------------- snapshot
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: ``LineModel(**model.config())`` is a fresh model configured alike."""
        return {
            "line": self.line,
            "arl0": self.arl0,
            "cell_arl0": self.cell_arl0,
            "calibration_s": self.calibration_s,
            "calibration_cells": self.calibration_cells,
            "detector": self.detector_kind,
            "memory_s": self.memory_s,
            "confirm_s": self.confirm_s,
            "realarm_s": self.realarm_s,
            "k_mad": self.k_mad,
            "pca_findings": self.pca_findings,
        }

    def snapshot(self) -> dict[str, Any]:
        """All state as JSON-able data; ``LineModel.restore`` resumes from it."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config(),
            "coater": self.coater.state(),
            "dryer": self.dryer.state(),
            "calender": self.calender.state(),
            "formation": self.formation.state(),
            "buffers": {m: _pack(rows) for m, rows in self.buffers.items()},
            "calibrated": self.calibrated,
            "detectors": {
                k: {"kind": type(d).__name__.lower(), **d.state()} for k, d in self.detectors.items()
            },
            "pca": {k: p.state() for k, p in self.pca.items()},
            "ml": {k: m.state() for k, m in self.ml.items()},
            "ticks": self.ticks,
            "tick_ns": self.tick_ns,
            "last_ns": self.last_ns,
            "last_alarm_ns": self.last_alarm_ns,
            "emitted_ns": self.emitted_ns,
            "pending": self.pending,
            "current_roll": self.current_roll,
            "ranges": self.ranges,
            "scatter": self.scatter,
            "roll_loading": self.roll_loading,
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
        }

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any]) -> LineModel:
        model = cls(**snapshot["config"])
        model.coater.load(snapshot["coater"])
        model.dryer.load(snapshot["dryer"])
        model.calender.load(snapshot["calender"])
        model.formation.load(snapshot["formation"])
        model.buffers = {m: _unpack(packed) for m, packed in snapshot["buffers"].items()}
        model.calibrated = dict(snapshot["calibrated"])
        for key, state in snapshot["detectors"].items():
            state = dict(state)
            detector = make_detector(state.pop("kind"), state["arl0"], state["mu"], state["sigma"])
            detector.load(state)
            model.detectors[key] = detector
        model.pca = {k: PCAMonitor.from_state(v) for k, v in snapshot["pca"].items()}
        model.ml = {k: ResidualRegressor.from_state(v) for k, v in snapshot["ml"].items()}
        model.ticks = dict(snapshot["ticks"])
        model.tick_ns = dict(snapshot["tick_ns"])
        model.last_ns = dict(snapshot["last_ns"])
        model.last_alarm_ns = dict(snapshot["last_alarm_ns"])
        model.emitted_ns = dict(snapshot["emitted_ns"])
        model.pending = [dict(p) for p in snapshot["pending"]]
        model.current_roll = dict(snapshot["current_roll"])
        model.ranges = {
            m: {name: (float(lo), float(hi)) for name, (lo, hi) in signals.items()}
            for m, signals in snapshot["ranges"].items()
        }
        model.scatter = {m: dict(signals) for m, signals in snapshot["scatter"].items()}
        model.roll_loading = {
            r: {b: list(e) for b, e in bins.items()} for r, bins in snapshot["roll_loading"].items()
        }
        model.cell_buffer = [tuple(c) for c in snapshot["cell_buffer"]]
        model.cell_ref = tuple(snapshot["cell_ref"])
        model.cell_rolls = {r: list(c) for r, c in snapshot["cell_rolls"].items()}
        model.channel_alarmed = set(snapshot["channel_alarmed"])
        model.recent_residuals = list(snapshot["recent_residuals"])
        model.channel_reference = {c: list(d) for c, d in snapshot["channel_reference"].items()}
        if snapshot["channel_sigma"] is not None:
            model.channel_sigma = float(snapshot["channel_sigma"])
        model.k_buffer = list(snapshot["k_buffer"])
        model.k_limit = snapshot["k_limit"] if snapshot["k_limit"] is not None else math.inf
        if snapshot["k_cusum"] is not None:
            model.k_cusum = BernoulliCUSUM()
            model.k_cusum.load(snapshot["k_cusum"])
            model.k_flagged = [(int(n), str(c)) for n, c in snapshot["k_flagged"]]
            model.k_start_ns = int(snapshot["k_start_ns"])
        return model


def _spread(
    buffer: list[tuple[int, dict[str, float]]],
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """Each signal's range (``RANGE_PERCENTILES``) and robust σ over a calibration buffer."""
    ranges, scatter = {}, {}
    for name in {name for _, values in buffer for name in values}:
        series = np.array([values.get(name, math.nan) for _, values in buffer], dtype=float)
        series = series[np.isfinite(series)]
        if series.size:
            low, high = np.percentile(series, RANGE_PERCENTILES)
            ranges[name] = (float(low), float(high))
            scatter[name] = robust_location_scale(series)[1]
    return ranges, scatter


def _pack(rows: list[tuple[int, dict[str, float]]]) -> dict[str, Any]:
    """A calibration buffer as a column list and value rows: a third of the JSON of dicts per tick."""
    columns = sorted({name for _, values in rows for name in values})
    return {"columns": columns, "rows": [[t, *(v.get(c) for c in columns)] for t, v in rows]}


def _unpack(packed: dict[str, Any]) -> list[tuple[int, dict[str, float]]]:
    columns = packed["columns"]
    return [
        (int(row[0]), {c: v for c, v in zip(columns, row[1:], strict=True) if v is not None})
        for row in packed["rows"]
    ]
