"""What every step model is, and the machinery the tick-read steps share.

A step model is one process step of a line (coating, calendering, sintering, formation, ...) as its kind
understands it: it calibrates on an in-control period, observes its step's signals, returns findings with
their cause, and keeps all its state as plain data. It speaks in *roles* (``pump_flow``, ``dry_loading``)
and in its kind's units; the line model (``models.line``) renames a line's signals to roles and converts
their units from the line description, so a step model never knows a machine's or a signal's name.

``TickStep`` is the part all steps read as ticks share: an initial in-control period (``calibration_s``)
fits the kind's physics and each feature's robust mean and σ; from then on one drift detector per feature
(limits from ``arl0``) and a PCA T²/SPE monitor over the step's signals run on every tick, and an alarm is
classified by the pattern of features moving at that time into a ``Finding``.
"""

from __future__ import annotations

import fnmatch
import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from core.records import ModelOutput, Parameter
from models.detectors import make_detector, robust_location_scale
from models.levelchart import BLOCK_S, FAST_DELTA, TwoScale
from models.minutes import MinuteMeans
from models.ml import ResidualRegressor
from models.pca import PCAMonitor
from models.prewhitened import ARCUSUM
from models.rootcause import Finding
from models.stale import Freeze

Values = dict[str, float]
RANGE_PERCENTILES = (0.5, 99.5)  # a signal's calibrated range, without its rarest spikes
#: a feature's CUSUM winsorises at ±CLIP σ: no single spike alarms; for Gaussian data ARL₀ barely moves
CLIP = 4.0
DEVIATION = "_deviation"  # a controlled value less its setpoint: <role>_deviation of <role>_setpoint
AMBIENT = "ambient_temperature"  # the role of the hall's air, measured at a machine
MOVING_ERRORS = 5.0  # a feature moved since an onset when its mean is this many standard errors off
MOVING_MIN_TICKS = 30  # ... over at least this many ticks
#: a declared lot value is judged on the median of its last readings: three, so that one spike moves
#: nothing while a new lot counts from its second reading, before a chart sees the new material ...
DECLARED_TICKS = 3
DECLARED_WINDOW = 30  # ... against its lot's level: the median of up to this many readings since the move
DECLARED_SIGMAS = 4.0  # ... moved when that median leaves the reference by this many σ of a lot's readings


@dataclass(frozen=True, slots=True)
class Forecast:
    """A what-if quantity in the kind's units: σ of the parameters (priors included), σ of a reading's
    in-control scatter, and the inputs it extrapolates on, each named with its calibrated range."""

    value: float
    sigma_model: float
    sigma_noise: float
    extrapolated: tuple[str, ...] = ()


class Unpredictable(Exception):
    """Raised inside a forecast: this quantity cannot be predicted, for this reason."""


#: a forecast of an upstream step's quantity (raises ``Unpredictable``), for a step that builds on it
Upstream = Callable[[str], Forecast]


@dataclass(frozen=True, slots=True)
class Tuning:
    """The statistical settings every step model of a line shares (``settings.models``)."""

    arl0: float = 1e6
    cell_arl0: float = 1e4
    calibration_s: float = 2700.0
    calibration_cells: int = 48
    detector: str = "twoscale"
    memory_s: float = 3600.0
    confirm_s: float = 120.0
    realarm_s: float = 8 * 3600.0
    k_mad: float = 5.0
    pca_findings: bool = False
    settle_s: float = 900.0
    rebase_s: float = 600.0
    on_delay_s: float = 0.0


@dataclass(slots=True)
class StepSpec:
    """What a step model is built from: the line, the step's id (its machine name), its tuning, the roles
    its description gives signals and the units their values arrive in, and the steps upstream of it
    along the material flow, nearest first."""

    line: str
    machine: str
    tuning: Tuning
    roles: frozenset[str] = frozenset()
    units: Mapping[str, str] = field(default_factory=dict)
    #: role -> the name the line stores it under (for messages an operator reads)
    names: Mapping[str, str] = field(default_factory=dict)
    upstream: list[StepModel] = field(default_factory=list)


class StepModel(ABC):
    """One process step's model. Subclasses set ``kind`` and register with ``models.steps.register``."""

    kind: ClassVar[str]
    #: role -> the unit the kind's physics works in; the line's signals are converted into it
    units: ClassVar[Mapping[str, str]] = {}
    #: roles a step of this kind cannot be modelled without
    required: ClassVar[tuple[str, ...]] = ()
    #: causes that follow from a finding upstream (ISA-18.2 consequential alarms): quiet while one is active
    consequential: ClassVar[frozenset[str]] = frozenset()
    #: consequential causes that are only ever consequences: with no upstream finding active, what moved
    #: is within what the upstream step, which measures it first, holds in control, and no alarm
    consequence_only: ClassVar[frozenset[str]] = frozenset()
    #: samples carry a cell and a channel (a cycler), not ticks of one machine
    per_cell: ClassVar[bool] = False
    #: what-if quantity -> the measured role it is read as (its unit and spec limits)
    quantities: ClassVar[Mapping[str, str]] = {}
    #: what-if quantity -> ± share of the recipe's value taken as spec limits when the line gives none
    tolerance: ClassVar[Mapping[str, float]] = {}
    #: what-if inputs an inverse moves when the user names none
    inverse_inputs: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def role_units(cls, roles: frozenset[str]) -> dict[str, str]:
        """Role -> model unit for a step whose description names ``roles``."""
        del roles
        return dict(cls.units)

    def __init__(self, spec: StepSpec) -> None:
        self.spec = spec
        self.line = spec.line
        self.machine = spec.machine
        self.tuning = spec.tuning
        self.outputs: list[ModelOutput] = []
        #: ``<feature>`` -> plant time of the last alarm of its detector, even if no finding was raised
        self.last_alarm_ns: dict[str, int] = {}
        #: the last tick's values by role, and the roll it belonged to
        self.current: Values = {}
        self.roll: str | None = None
        #: role -> (low, high) seen during calibration: beyond it a prediction extrapolates
        self.ranges: dict[str, tuple[float, float]] = {}
        #: role -> robust σ of its readings during calibration: in-control scatter
        self.scatter: dict[str, float] = {}

    @property
    @abstractmethod
    def calibrated(self) -> bool: ...

    @abstractmethod
    def calibration_progress(self) -> str:
        """How far calibration is, for an operator ("31 of 45 plant minutes")."""

    def tick(self, time_ns: int, values: Values) -> list[Finding]:
        """One tick of the step's signals by role (tick-read kinds)."""
        del time_ns, values
        return []

    def cell(self, time_ns: int, cell: str, channel: str, roll: str, values: Values) -> list[Finding]:
        """One cell's values by role (per-cell kinds)."""
        del time_ns, cell, channel, roll, values
        return []

    def whatif_inputs(self) -> dict[str, str]:
        """What-if input role -> the role whose current value it starts from (a setpoint, or itself)."""
        return {}

    def forecast(self, inputs: Mapping[str, float], upstream: Upstream) -> dict[str, Forecast | str]:
        """Each of ``quantities`` at these inputs (kind's units), or the reason it cannot be predicted."""
        del inputs, upstream
        return {}

    def signal_name(self, role: str) -> str:
        return self.spec.names.get(role, role)

    def need(self, inputs: Mapping[str, float], *roles: str) -> None:
        """Raise ``Unpredictable`` while calibrating or while an input has no value."""
        if not self.calibrated:
            raise Unpredictable(f"{self.machine} model calibrating: {self.calibration_progress()}")
        held = self.whatif_inputs()
        for role in roles:
            if not math.isfinite(inputs.get(role, math.nan)):
                name = self.signal_name(held.get(role, role))
                raise Unpredictable(f"no value for {self.machine} {name} yet")

    def extrapolated(self, inputs: Mapping[str, float]) -> tuple[str, ...]:
        """The inputs outside the range they took during calibration, each named with that range."""
        outside = []
        for role, value in inputs.items():
            if role in self.ranges and not self.ranges[role][0] <= value <= self.ranges[role][1]:
                low, high = self.ranges[role]
                outside.append(
                    f"{self.machine} {self.signal_name(role)} {value:.4g} outside the calibrated "
                    f"{low:.4g} to {high:.4g}"
                )
        return tuple(outside)

    def noise(self, role: str) -> float:
        """The in-control scatter of a reading of ``role`` (0 when unknown)."""
        sigma = self.scatter.get(role, math.nan)
        return sigma if math.isfinite(sigma) else 0.0

    def roll_value(self, role: str, roll: str, position_m: float) -> float:
        """What this step measured of ``role`` where a roll position passed it (genealogy); NaN if never."""
        del role, roll, position_m
        return math.nan

    def roll_means(self, role: str) -> dict[str, float]:
        """Each remembered roll's mean of ``role``, for tracing a downstream shift to its rolls."""
        del role
        return {}

    def parameters(self) -> list[Parameter]:
        return []

    def status(self, time_ns: int) -> list[ModelOutput]:
        """What operators chart between ticks beside the parameters (a cycler's channel offsets)."""
        del time_ns
        return []

    def statistics(self) -> dict[str, tuple[float, float]]:
        """Every detector's current statistic and threshold, by feature."""
        return {}

    def stale(self) -> dict[str, int]:
        """Role -> plant time its value froze, for each role withheld as frozen now (``models.stale``)."""
        return {}

    def unresolved_levels(self) -> dict[str, int]:
        """Feature -> plant time calibration ended, for each feature whose level the calibration could
        not resolve (``models.levelchart``): its level chart is off."""
        return {}

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """All state as JSON-able data; ``load`` resumes from it."""

    @abstractmethod
    def load(self, state: Mapping[str, Any]) -> None: ...

    def upstream_order(self) -> list[StepModel]:
        """The steps upstream, in the order this step's what-if asks them for a quantity it builds on."""
        return list(self.spec.upstream)

    def upstream_value(self, role: str, roll: str, position_m: float) -> float:
        """``role`` of this roll position from the nearest step upstream that measured it."""
        for step in self.spec.upstream:
            value = step.roll_value(role, roll, position_m)
            if math.isfinite(value):
                return value
        return math.nan

    def _common_state(self) -> dict[str, Any]:
        return {
            "last_alarm_ns": self.last_alarm_ns,
            "current": self.current,
            "roll": self.roll,
            "ranges": self.ranges,
            "scatter": self.scatter,
        }

    def _load_common(self, state: Mapping[str, Any]) -> None:
        self.last_alarm_ns = dict(state["last_alarm_ns"])
        self.current = dict(state["current"])
        self.roll = state["roll"]
        self.ranges = {name: (float(lo), float(hi)) for name, (lo, hi) in state["ranges"].items()}
        self.scatter = dict(state["scatter"])


def get(values: Mapping[str, float], name: str) -> float:
    value = values.get(name, math.nan)
    return float(value) if value is not None else math.nan


class TickStep(StepModel):
    """A step read as ticks: calibration buffer, per-feature detectors, PCA, residual ML, classification.

    Subclasses give the kind's physics (``fit``), its features (``features``) and its fault signatures
    (``classify``).
    """

    #: feature -> its detector's design shift in σ (levels drift slowly and widely)
    level_features: ClassVar[Mapping[str, float]] = {}
    #: signals no physics of the kind uses: the residual regressors may learn from them (models.ml)
    ml_context: ClassVar[tuple[str, ...]] = ()
    ml_targets: ClassVar[tuple[str, ...]] = ()
    #: features (fnmatch patterns) whose heat balance reaches the hall: where the step measures the hall's
    #: air (``AMBIENT``), a regressor learns how they follow it, so the hall's day is no drift
    ambient_targets: ClassVar[tuple[str, ...]] = ()
    #: causes found by what does *not* move: confirmed after ``confirm_s`` before they are raised
    elimination_causes: ClassVar[frozenset[str]] = frozenset()
    #: measured roles that declare a material's property (a lot's lab value): a new lot moves the
    #: operating point as a setpoint change does
    declared: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: StepSpec) -> None:
        super().__init__(spec)
        #: feature -> unit of its magnitude in a finding
        self.feature_units: dict[str, str] = {}
        self.buffer: list[tuple[int, Values]] = []
        self.done = False
        self.detectors: dict[str, Any] = {}
        self.pca: PCAMonitor | None = None
        self.ml: dict[str, ResidualRegressor] = {}
        self.ticks = 0
        self.tick_ns = 1e9
        self.last_ns: int | None = None
        self.pending: list[dict[str, Any]] = []
        self.history = MinuteMeans(self.tuning.memory_s)
        self.freeze = Freeze()
        self.setpoint_roles = tuple(sorted(r for r in spec.roles if r.endswith("_setpoint")))
        #: the operating point the detectors are referenced to: setpoints and declared lot values
        self.operating_point: Values = {}
        #: declared role -> its readings since the operating point last moved (at most ``DECLARED_WINDOW``)
        self.recent_declared: dict[str, deque[float]] = {
            r: deque(maxlen=DECLARED_WINDOW) for r in self.declared
        }
        #: declared role -> σ of its readings within a lot
        self.declared_noise: dict[str, float] = {}
        #: plant time this step's operating point last moved (upstream steps' moves reach it too)
        self.moved_ns = 0
        self.rebasing: dict[str, Any] | None = None
        #: plant time calibration ended
        self.calibrated_ns = 0

    # ------------------------------------------------------------ the kind's part
    @abstractmethod
    def fit(self, buffer: Sequence[tuple[int, Values]]) -> None:
        """Calibrate the kind's physics on the in-control buffer."""

    @abstractmethod
    def features(self, values: Values) -> Values:
        """The structured features of one tick (residuals against the physics, actuator − setpoint,
        levels); predictions go to ``self.outputs``."""

    @abstractmethod
    def classify(self, moving: set[str], feature: str, magnitude: float) -> tuple[str, str, float] | None:
        """(cause, role to name, confidence) for an alarm on ``feature`` that moved by ``magnitude``, or
        None if it is no finding."""

    def observed(self, values: Values) -> None:
        """A hook for each tick before calibration and detection (genealogy records)."""
        del values

    def judged(self, feature: str, magnitude: float) -> bool:
        """Whether an alarm of ``feature`` in this direction is a quality risk at all."""
        del feature, magnitude
        return True

    # ------------------------------------------------------------ the shared part
    @property
    def calibrated(self) -> bool:
        return self.done

    def calibration_progress(self) -> str:
        buffer = self.buffer
        done = (buffer[-1][0] - buffer[0][0]) / 60e9 if buffer else 0.0
        return f"{done:.0f} of {self.tuning.calibration_s / 60:.0f} plant minutes"

    def tick(self, time_ns: int, values: Values) -> list[Finding]:
        self.outputs = []
        if self.last_ns is not None:
            dt = time_ns - self.last_ns
            if dt > 0:
                self.tick_ns += 0.01 * (dt - self.tick_ns)
        self.last_ns = time_ns
        values = self.freeze.mask(time_ns, values)
        self.current = values
        self.observed(values)
        if not self.done:
            self.buffer.append((time_ns, values))
            if (time_ns - self.buffer[0][0]) / 1e9 >= self.tuning.calibration_s:
                self._calibrate()
            return []
        self.ticks += 1
        self._follow_operating_point(time_ns, values)
        features = self._features(values)
        self.history.add(time_ns, features)
        findings: list[Finding] = []
        settling = self._rebase(time_ns, features)
        for name, value in features.items():
            detector = self.detectors.get(name)
            if detector is None or not math.isfinite(value) or name in settling:
                continue
            detector.update(value)
            self.outputs.append(ModelOutput(self.machine, name, "statistic", detector.statistic, time_ns))
            self.outputs.append(ModelOutput(self.machine, name, "threshold", detector.threshold, time_ns))
            if detector.drift_detected:
                findings += self._alarm(name, detector, time_ns)
        monitor = self.pca
        if monitor is not None:
            monitor.update([values.get(s, math.nan) for s in monitor.signals])
            self.outputs.append(ModelOutput(self.machine, "pca", "statistic", monitor.statistic, time_ns))
            if monitor.drift_detected:
                findings += self._pca_alarm(monitor, time_ns) if self.tuning.pca_findings else []
        findings += self._due(time_ns)
        return findings

    # ------------------------------------------------------------ operating point
    def _reference_point(self, values: Values, lots: Mapping[str, deque[float]]) -> Values:
        """Setpoints as they stand and each declared value's latest reading: the median of its last
        ``DECLARED_TICKS`` readings (NaN before it has so many)."""
        point = {r: get(values, r) for r in self.setpoint_roles}
        for role in self.declared:
            last = list(lots[role])[-DECLARED_TICKS:]
            point[role] = float(np.median(last)) if len(last) == DECLARED_TICKS else math.nan
        return point

    def _moved_to(self, values: Values, reference: Values, lots: dict[str, deque[float]]) -> set[str]:
        """The roles in which the operating point left ``reference`` at this tick, none if it stayed
        (``lots``: each declared value's readings since the last move, this tick's added); ``reference``
        follows it either way: a setpoint as it stands after a move, a declared value as the median of its
        lot's readings."""
        for role in self.declared:
            if math.isfinite(value := get(values, role)):
                lots[role].append(value)
        now = self._reference_point(values, lots)
        moved = {
            role for role, value in now.items() if self._differs(role, value, reference.get(role, math.nan))
        }
        for role, value in now.items():
            if role in self.declared:
                if moved:  # the new lot's readings only
                    kept = list(lots[role])[-DECLARED_TICKS:]
                    lots[role].clear()
                    lots[role].extend(kept)
                if len(lots[role]) >= DECLARED_TICKS:
                    reference[role] = float(np.median(lots[role]))
            elif math.isfinite(value) and (moved or role not in reference):
                reference[role] = value
        return moved

    def _follow_operating_point(self, time_ns: int, values: Values) -> None:
        """Start a re-baseline when a setpoint or a declared lot value moves here or upstream."""
        moved = self._moved_to(values, self.operating_point, self.recent_declared)
        upstream = max((s.moved_ns for s in self.spec.upstream if isinstance(s, TickStep)), default=0)
        if moved or upstream > self.moved_ns:
            self.moved(max(time_ns, upstream) if not moved else time_ns, moved)

    def moved(self, time_ns: int, roles: Iterable[str] | None = None) -> None:
        """The operating point moved at ``time_ns`` in ``roles`` (None: in ways unknown, as at the end of
        calibration): every detector waits ``settle_s`` (the transient is no fault), then each feature
        takes its new in-control mean over ``rebase_s``: levels move with the operating point, and
        residuals too where the physics extrapolates (a dryer calibrated at one speed). A drift that goes
        on after the move is charted against the new reference, so it is not masked; one that stopped at
        the move's moment would be, as with any re-baseline.

        A controlled value's deviation from its own setpoint is the same at any operating point, so a
        move of another setpoint re-baselines it only by what slow in-control change explains (the hall's
        day): a shift of the fast side's design size (``FAST_DELTA`` σ) keeps the old reference, so a
        dryer zone that starts to fail a minute before the operator changes the line speed is judged,
        and alarms, once the move settles. Its level chart judges the shift; the fast side resumes from
        the new level (``TwoScale.resume``), since a level that wandered during the pause is no step.
        """
        self.moved_ns = time_ns
        settle_ns = time_ns + int(self.tuning.settle_s * 1e9)
        known = None if roles is None else set(roles)
        if known is not None and self.rebasing is not None:  # a move within a move: both re-baseline
            earlier = self.rebasing.get("moved")
            known = None if earlier is None else known | set(earlier)
        self.rebasing = {
            "settle_ns": settle_ns,
            "until_ns": settle_ns + int(self.tuning.rebase_s * 1e9),
            "rows": {},
            "moved": None if known is None else sorted(known),
        }

    def _rebase(self, time_ns: int, features: Values) -> set[str]:
        """The features not charted this tick while a re-baseline runs; at its end, their new means."""
        plan = self.rebasing
        if plan is None:
            return set()
        if time_ns < plan["until_ns"]:
            if time_ns >= plan["settle_ns"]:
                for name, value in features.items():
                    if math.isfinite(value):
                        plan["rows"].setdefault(name, []).append(value)
            return set(features)
        moved = plan.get("moved")  # a snapshot from before moves named their roles: all re-baseline
        for name, rows in plan["rows"].items():
            detector = self.detectors.get(name)
            if detector is None or len(rows) < 30:
                continue
            level = float(np.median(rows))
            own = name.removesuffix(DEVIATION) + "_setpoint"
            unmoved = moved is not None and name.endswith(DEVIATION) and own not in moved
            if not (unmoved and abs(level - detector.mu) > FAST_DELTA * detector.sigma):
                if isinstance(detector, TwoScale):
                    detector.rebase(level, len(rows))
                else:
                    detector.rebase(level)
            elif isinstance(detector, TwoScale):  # not the move's: judged against the old reference
                detector.resume(level)
        self.rebasing = None
        return set()

    def _features(self, values: Values) -> Values:
        features = self.features(values)
        for name, regressor in self.ml.items():
            if name in features:
                features[name] -= regressor.predict(values)
        t = self.last_ns or 0
        for name, value in features.items():
            if name.endswith(("_residual", "_deviation")) and math.isfinite(value):
                self.outputs.append(ModelOutput(self.machine, name, "residual", value, t))
        return features

    def new_detector(self, name: str, series: np.ndarray) -> Any:
        """The drift detector of feature ``name``, calibrated on its in-control ``series``: ``arcusum``
        prewhitens it and sets its limit on held-out data (``models.prewhitened``)."""
        tuning = self.tuning
        if tuning.detector == "arcusum":
            return ARCUSUM.calibrated(series, tuning.arl0, delta=self.level_features.get(name, 1.0))
        if tuning.detector == "twoscale":
            block = max(1, round(BLOCK_S * 1e9 / self.tick_ns))
            return TwoScale.calibrated(series, tuning.arl0, block, self.level_features.get(name, 1.0))
        mu, sigma = robust_location_scale(series)
        options: dict[str, float] = {}
        if tuning.detector == "cusum":
            options = {"clip": CLIP, "delta": self.level_features.get(name, 1.0)}
        return make_detector(tuning.detector, tuning.arl0, mu, sigma, **options)

    def _calibrate(self) -> None:
        """Fit the physics on the in-control buffer, then the detectors' mean, σ and limits; frozen
        stretches (``models.stale``) are left out of all of it and withheld from then on."""
        self.freeze = Freeze.learnt(self.buffer)
        buffer = self.freeze.clean(self.buffer)
        self.fit(buffer)
        self.calibrated_ns = buffer[-1][0]
        for role in self.declared:
            readings = np.array([get(data, role) for _, data in buffer], dtype=float)
            readings = readings[np.isfinite(readings)]
            # a lot's own reading noise, from reading to reading: the lots the calibration saw are no noise
            self.declared_noise[role] = robust_location_scale(np.diff(readings))[1] / math.sqrt(2)
        segments = self._operating_segments(buffer)
        rows = []
        for time_ns, data in buffer:
            self.last_ns = time_ns
            rows.append(self.features(data))
        self.outputs = []
        matrices: dict[tuple[str, ...], np.ndarray] = {}  # targets often share their context
        for name, context in self.ml_models(rows[0]).items():
            if context not in matrices:
                matrices[context] = np.array(
                    [[data.get(c, math.nan) for c in context] for _, data in buffer], dtype=float
                )
            slow = AMBIENT in context
            x = matrices[context]
            regressor = ResidualRegressor(list(context), slow=slow).fit(x, [row[name] for row in rows])
            self.ml[name] = regressor
            for row, (_, data) in zip(rows, buffer, strict=True):
                row[name] -= regressor.predict(data)
        tuning = self.tuning
        for name in rows[0]:
            series = at_last_operating_point(np.array([row[name] for row in rows], dtype=float), segments)
            if np.isfinite(series).sum() < 30:
                continue
            self.detectors[name] = self.new_detector(name, series)
        signals = sorted(
            s
            for s in buffer[0][1]
            if not s.endswith("setpoint")
            and not s.endswith("position")
            and np.nanstd([d.get(s, math.nan) for _, d in buffer]) > 0
        )
        matrix = np.array([[d.get(s, math.nan) for s in signals] for _, d in buffer], dtype=float)
        if len(signals) >= 2 and np.isfinite(matrix).all(axis=1).sum() > 10 * len(signals):
            self.pca = PCAMonitor(signals, arl0=tuning.arl0).fit(matrix)
        self.ranges, self.scatter = spread(buffer)
        last_start = buffer[segments[-1][0]][0] if segments else buffer[-1][0]
        if segments and segments[-1][1] < len(buffer):  # moved again while settling: a point not yet seen
            self.moved(buffer[segments[-1][1]][0])
        elif (buffer[-1][0] - last_start) / 1e9 < self.tuning.rebase_s:  # too little of the new point seen
            self.moved(last_start)
        self.buffer = []
        self.done = True

    def ml_models(self, features: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Feature -> the context signals its residual regressor may learn from: the kind's
        ``ml_context`` for its ``ml_targets``, and the hall's air for its ``ambient_targets`` where the
        step measures it."""
        models = {name: self.ml_context for name in self.ml_targets if name in features}
        if AMBIENT in self.spec.roles:
            for name in features:
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in self.ambient_targets):
                    models[name] = (*models.get(name, ()), AMBIENT)
        return models

    def _operating_segments(self, buffer: Sequence[tuple[int, Values]]) -> list[tuple[int, int]]:
        """Index ranges of the calibration buffer at one operating point (setpoints and declared lots, as
        ``_follow_operating_point`` sees them live), each move's ``settle_s`` left out; the operating
        point and the lots' readings are where the buffer leaves them, for monitoring to start from."""
        self.operating_point = {}
        segments: list[tuple[int, int]] = []
        start: int | None = 0
        settled_ns = -math.inf
        for i, (time_ns, values) in enumerate(buffer):
            if self._moved_to(values, self.operating_point, self.recent_declared):
                if start is not None:
                    segments.append((start, i))
                start, settled_ns = None, time_ns + self.tuning.settle_s * 1e9
            if start is None and time_ns >= settled_ns:
                start = i
        if start is not None:
            segments.append((start, len(buffer)))
        return [(a, b) for a, b in segments if b > a]

    def _differs(self, role: str, value: float, reference: float) -> bool:
        """Whether the operating point's ``role`` moved: a setpoint at all, a declared lot value by more
        than ``DECLARED_SIGMAS`` of its reading noise."""
        if not (math.isfinite(value) and math.isfinite(reference)):
            return False
        if role in self.declared:
            return abs(value - reference) > DECLARED_SIGMAS * self.declared_noise.get(role, 0.0)
        return abs(value - reference) > 1e-9 * max(1.0, abs(reference))

    def _onset_ns(self, detector: Any, time_ns: int) -> int:
        onset = detector.onset if detector.onset is not None else detector.n
        return int(time_ns - (detector.n - onset) * self.tick_ns)

    def _moving(self, onset_ns: int, time_ns: int) -> set[str]:
        """Features whose mean since the onset (to within a block of ``history``) differs from in-control
        by more than ``MOVING_ERRORS`` standard errors."""
        window_ns = max(time_ns - onset_ns, MOVING_MIN_TICKS * self.tick_ns)
        moving = set()
        for name, (mean, count) in self.history.means_since(int(time_ns - window_ns)).items():
            detector = self.detectors.get(name)
            if detector is None or count < 10:
                continue
            if abs(mean - detector.mu) > MOVING_ERRORS * detector.standard_error(count):
                moving.add(name)
        return moving

    def _alarm(self, name: str, detector: Any, time_ns: int) -> list[Finding]:
        self.last_alarm_ns[name] = time_ns
        item = {
            "feature": name,
            "onset_ns": self._onset_ns(detector, time_ns),
            "magnitude": detector.magnitude,
            "statistic": detector.statistic,
            "threshold": detector.threshold,
            "alarm_ns": time_ns,
            "due_ns": time_ns,
        }
        if not self.judged(name, item["magnitude"]):
            return []
        finding = self._classify(item, time_ns)
        if finding is None:
            return []
        wait_s = self.tuning.on_delay_s
        if finding.cause in self.elimination_causes:
            wait_s = max(wait_s, self.tuning.confirm_s)
        if wait_s > 0:
            item["due_ns"] = time_ns + int(wait_s * 1e9)
            self.pending.append(item)
            return []
        return [finding]

    def _due(self, time_ns: int) -> list[Finding]:
        """Pending alarms whose wait is over (ISA-18.2 on-delay, or a cause found by elimination); one
        the operating point moved within ``on_delay_s`` of was the move's transient and is dropped."""
        due = [p for p in self.pending if p["due_ns"] <= time_ns]
        self.pending = [p for p in self.pending if p not in due]
        on_delay_ns = self.tuning.on_delay_s * 1e9
        kept = [p for p in due if not (on_delay_ns > 0 and self.moved_ns >= p["alarm_ns"] - on_delay_ns)]
        return [f for item in kept if (f := self._classify(item, time_ns)) is not None]

    def _classify(self, item: Mapping[str, Any], time_ns: int) -> Finding | None:
        name = item["feature"]
        moving = self._moving(item["onset_ns"], time_ns) | {name}
        verdict = self.classify(moving, name, item["magnitude"])
        if verdict is None:
            return None
        cause, signal, confidence = verdict
        detail = f"Detected on {name}; also moving: {', '.join(sorted(moving - {name})) or 'nothing else'}."
        magnitude, unit = item["magnitude"], self.feature_units.get(name, "")
        named = self._feature_of(signal)
        if named is not None and named != name:  # say how far the signal it names moved, in its unit
            moved = self.history.means_since(item["onset_ns"]).get(named)
            if moved is not None:
                magnitude, unit = moved[0] - self.detectors[named].mu, self.feature_units.get(named, "")
        return Finding(
            line=self.line,
            machine=self.machine,
            signal=signal,
            onset_ns=item["onset_ns"],
            magnitude=magnitude,
            unit=unit,
            cause=cause,
            confidence=confidence,
            detector=f"{self.tuning.detector}:{name}",
            statistic=item["statistic"],
            threshold=item["threshold"],
            time_ns=time_ns,
            rolls=[self.roll] if self.roll is not None else [],
            detail=detail,
            moving=tuple(sorted(moving)),
        )

    def _feature_of(self, role: str) -> str | None:
        """The charted feature of a role a finding names: its deviation, its residual, or its level."""
        return next((f for f in (f"{role}_deviation", f"{role}_residual", role) if f in self.detectors), None)

    def _pca_alarm(self, monitor: PCAMonitor, time_ns: int) -> list[Finding]:
        contributions = monitor.contributions()
        top = max(contributions, key=lambda s: contributions[s])
        statistic = monitor.statistic
        if time_ns - max(self.last_alarm_ns.values(), default=-(10**30)) <= self.tuning.memory_s * 1e9:
            return []
        listed = ", ".join(
            f"{s} {c:.0%}" for s, c in sorted(contributions.items(), key=lambda kv: -kv[1])[:3]
        )
        return [
            Finding(
                line=self.line,
                machine=self.machine,
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
        ]

    def stale(self) -> dict[str, int]:
        return dict(self.freeze.since_ns)

    def unresolved_levels(self) -> dict[str, int]:
        return {n: self.calibrated_ns for n, d in self.detectors.items() if not getattr(d, "resolved", True)}

    def statistics(self) -> dict[str, tuple[float, float]]:
        table = {name: (d.statistic, d.threshold) for name, d in self.detectors.items()}
        if self.pca is not None:
            table["pca"] = (self.pca.statistic, self.pca.threshold)
        return table

    # ------------------------------------------------------------ state
    @abstractmethod
    def physics_state(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_physics(self, state: Mapping[str, Any]) -> None: ...

    def state(self) -> dict[str, Any]:
        return {
            **self._common_state(),
            "physics": self.physics_state(),
            "buffer": pack(self.buffer),
            "done": self.done,
            "detectors": {
                k: {"kind": type(d).__name__.lower(), **d.state()} for k, d in self.detectors.items()
            },
            "pca": self.pca.state() if self.pca is not None else None,
            "ml": {k: m.state() for k, m in self.ml.items()},
            "ticks": self.ticks,
            "tick_ns": self.tick_ns,
            "last_ns": self.last_ns,
            "pending": self.pending,
            "freeze": self.freeze.state(),
            "operating_point": self.operating_point,
            "recent_declared": {r: list(v) for r, v in self.recent_declared.items()},
            "declared_noise": self.declared_noise,
            "moved_ns": self.moved_ns,
            "rebasing": self.rebasing,
            "history": self.history.state(),
            "calibrated_ns": self.calibrated_ns,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self._load_common(state)
        self.load_physics(state["physics"])
        self.buffer = unpack(state["buffer"])
        self.done = bool(state["done"])
        self.detectors = load_detectors(state["detectors"])
        self.pca = PCAMonitor.from_state(state["pca"]) if state["pca"] is not None else None
        self.ml = {k: ResidualRegressor.from_state(v) for k, v in state["ml"].items()}
        self.ticks = int(state["ticks"])
        self.tick_ns = float(state["tick_ns"])
        self.last_ns = state["last_ns"]
        self.pending = [dict(p) for p in state["pending"]]
        self.freeze = Freeze.from_state(state["freeze"])
        self.operating_point = dict(state["operating_point"])
        for role, values in state["recent_declared"].items():
            self.recent_declared[role].extend(values)
        self.declared_noise = dict(state["declared_noise"])
        self.moved_ns = int(state["moved_ns"])
        self.rebasing = state["rebasing"]
        self.history.load(state["history"])
        self.calibrated_ns = int(state["calibrated_ns"])


def load_detectors(states: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    detectors = {}
    for key, saved in states.items():
        state = dict(saved)
        detector = make_detector(state.pop("kind"), state["arl0"], state["mu"], state["sigma"])
        detector.load(state)
        detectors[key] = detector
    return detectors


def at_last_operating_point(series: np.ndarray, segments: Sequence[tuple[int, int]]) -> np.ndarray:
    """A calibration series as if all of it had run at its last operating point: each segment (between
    setpoint moves and declared lots) shifted by its own median onto the last one's, the settling
    between segments left out (NaN). A lot's level is no in-control variation of the next one's."""
    if not segments:
        return series
    out = np.full(len(series), np.nan)
    last = series[slice(*segments[-1])]
    anchor = float(np.nanmedian(last)) if np.isfinite(last).any() else 0.0
    for a, b in segments:
        part = series[a:b]
        if np.isfinite(part).any():
            out[a:b] = part - float(np.nanmedian(part)) + anchor
    return out


def spread(buffer: Sequence[tuple[int, Values]]) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
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


def pack(rows: Sequence[tuple[int, Values]]) -> dict[str, Any]:
    """A calibration buffer as a column list and value rows: a third of the JSON of dicts per tick."""
    columns = sorted({name for _, values in rows for name in values})
    return {"columns": columns, "rows": [[t, *(v.get(c) for c in columns)] for t, v in rows]}


def unpack(packed: Mapping[str, Any]) -> list[tuple[int, Values]]:
    columns = packed["columns"]
    return [
        (int(row[0]), {c: v for c, v in zip(columns, row[1:], strict=True) if v is not None})
        for row in packed["rows"]
    ]
