"""Backtest on recorded history of any plant: the live detectors over a table, scored against ground truth.

Every numeric column gets a univariate detector and all of them a PCA T²/SPE monitor, limits from an
in-control training period at the stated ARL₀. When the columns of the simulated line's modelled steps
(``<step>.<signal>`` of ``lines/pilot-nmc.toml``) are present, the physics ``LineModel`` runs on them
instead, so its residuals and root causes are what is judged; the other columns keep their plain
detectors.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core import linedesc
from models.detectors import make_detector, robust_location_scale
from models.levelchart import BLOCK_S, TwoScale
from models.line import LineModel
from models.pca import PCAMonitor
from models.prewhitened import ARCUSUM
from models.replay import alarms, replay
from models.rootcause import Finding
from models.steps import kinds

SHIFT_S = 8 * 3600.0


def line_machines() -> tuple[str, ...]:
    """The modelled tick steps of the line description the backtest's line model runs (``lines/``)."""
    return tuple(s.id for s in linedesc.load().steps if s.kind in kinds() and s.kind != "formation")


@dataclass(frozen=True, slots=True)
class Detection:
    """One alarm: when it was raised, on what, the estimated onset and shift, and the named cause."""

    time: pd.Timestamp
    machine: str
    signal: str
    detector: str
    onset: pd.Timestamp
    magnitude: float
    unit: str = ""
    cause: str = ""
    channel: str | None = None

    @classmethod
    def of(cls, finding: Finding) -> Detection:
        """The detection a line model's finding amounts to."""
        return cls(
            pd.Timestamp(finding.time_ns, tz="UTC"),
            finding.machine,
            finding.signal,
            finding.detector,
            pd.Timestamp(finding.onset_ns, tz="UTC"),
            finding.magnitude,
            finding.unit,
            finding.cause,
            finding.channel,
        )

    def row(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "machine": self.machine,
            "signal": self.signal,
            "channel": self.channel or "",
            "detector": self.detector,
            "onset": self.onset.isoformat(),
            "magnitude": self.magnitude,
            "unit": self.unit,
            "cause": self.cause,
        }


def _split(column: str) -> tuple[str, str]:
    machine, _, signal = column.rpartition(".")
    return machine, signal


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns with numbers that vary in the frame (a constant cannot drift detectably from training)."""
    columns = []
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            values = series.to_numpy(dtype=float)
            if np.isfinite(values).sum() > 1 and np.nanstd(values) > 0:
                columns.append(str(column))
    return columns


def generic_detector(kind: str, arl0: float, training: Any, block: int = 1) -> Any:
    """A plain column's chart: the two-scale chart (``models.levelchart``, blocks of ``block`` samples)
    or the CUSUM prewhitened with its limit from the training period (``models.prewhitened``), both of
    which keep ARL₀ on autocorrelated, heavy-tailed data; EWMA and Shewhart on the raw values, for
    comparison."""
    series = np.asarray(training, dtype=float)
    if kind == "twoscale":
        return TwoScale.calibrated(series, arl0, block)
    if kind in ("cusum", "arcusum"):
        return ARCUSUM.calibrated(series, arl0)
    mu, sigma = robust_location_scale(series)
    return make_detector(kind, arl0, mu, sigma)


def samples_per(seconds: float, index: pd.Index) -> int:
    """How many rows of a time-indexed table span ``seconds`` (its median spacing; at least 1)."""
    if not isinstance(index, pd.DatetimeIndex) or len(index) < 2:
        return 1
    spacing = float(np.median(np.diff(index.as_unit("ns").asi8))) / 1e9
    return max(1, round(seconds / spacing)) if spacing > 0 else 1


def uses_line_model(frame: pd.DataFrame) -> bool:
    return any(str(c).startswith(f"{m}.") for c in frame.columns for m in line_machines())


def run(
    history: pd.DataFrame,
    training: pd.DataFrame,
    *,
    arl0: float = 1e6,
    detector: str = "twoscale",
    cells: pd.DataFrame | None = None,
    pca: bool = True,
    progress: Callable[[int], None] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Detection]:
    """Detections over ``history`` (time index), limits from ``training`` (its in-control period);
    ``options`` are the line model's other settings (``settings.models``: cell calibration, memory...),
    so a backtest judges as the live twin configured alike does."""
    detections: list[Detection] = []
    plain = numeric_columns(training)
    if uses_line_model(history):
        detections += _line_model(history, training, arl0, detector, cells, options or {})
        plain = [c for c in plain if not c.startswith(tuple(f"{m}." for m in line_machines()))]
    monitor = None
    if pca and len(plain) >= 2:
        monitor = PCAMonitor(plain, arl0=arl0).fit(training[plain].to_numpy(dtype=float))
    block = samples_per(BLOCK_S, training.index)
    detectors = {column: generic_detector(detector, arl0, training[column], block) for column in plain}
    matrix = history[plain].to_numpy(dtype=float) if plain else np.empty((len(history), 0))
    times = history.index
    for i in range(len(history)):
        row = matrix[i]
        for j, column in enumerate(plain):
            if not math.isfinite(row[j]):
                continue
            d = detectors[column]
            d.update(row[j])
            if d.drift_detected:
                onset = times[max(i - (d.n - (d.onset or 0)) + 1, 0)]
                machine, signal = _split(column)
                detections.append(Detection(times[i], machine, signal, detector, onset, d.magnitude))
        if monitor is not None and np.isfinite(row).all():
            monitor.update(row)
            if monitor.drift_detected:
                contributions = monitor.contributions()
                top = max(contributions, key=lambda c: contributions[c])
                machine, signal = _split(top)
                detections.append(
                    Detection(times[i], machine, signal, "pca", times[i], monitor.statistic, "x limit")
                )
        if progress is not None and i % 1000 == 0:
            progress(i)
    detections.sort(key=lambda d: d.time)
    return detections


def _line_model(
    history: pd.DataFrame,
    training: pd.DataFrame,
    arl0: float,
    detector: str,
    cells: pd.DataFrame | None,
    options: Mapping[str, Any],
) -> list[Detection]:
    """The physics line model, calibrated on the training rows then run over the history."""
    span = (training.index[-1] - training.index[0]).total_seconds() if len(training) > 1 else 0.0
    rest = {k: v for k, v in options.items() if k not in ("arl0", "detector", "calibration_s")}
    model = LineModel(arl0=arl0, detector=detector, calibration_s=max(span, 1.0), **rest)
    if (
        len(training) and training.index[-1] >= history.index[0]
    ):  # a separate training file: replay it just before
        gap = history.index[1] - history.index[0] if len(history) > 1 else pd.Timedelta(seconds=1)
        training = training.set_axis(training.index - (training.index[-1] - history.index[0] + gap))
    combined = pd.concat([training, history])
    findings = alarms(replay(model, combined, cells))
    start = history.index[0].value
    return [Detection.of(f) for f in findings if f.time_ns >= start]


@dataclass
class Score:
    """Detection delay per true drift, misses, and false alarms per 8-hour shift of monitored time."""

    delays_s: dict[str, float] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    false_alarms: int = 0
    monitored_s: float = 0.0

    @property
    def false_alarms_per_shift(self) -> float:
        return self.false_alarms / (self.monitored_s / SHIFT_S) if self.monitored_s > 0 else math.nan


def _matches(detection: Detection, truth: dict[str, Any]) -> bool:
    """A detection belongs to a drift when it is on the drift's machine or one of its listed signals."""
    if detection.machine == truth.get("machine"):
        return truth.get("channel") in (None, detection.channel) or detection.channel is None
    names = [f"{detection.machine}.{detection.signal}", f"cells.{detection.signal}"]
    return any(fnmatch.fnmatch(n, pattern) for n in names for pattern in truth.get("signals", []))


def score(
    detections: Iterable[Detection],
    truth: list[dict[str, Any]],
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> Score:
    """Score detections between ``start`` and ``end`` against ground-truth drift records (JSON lines)."""
    result = Score(monitored_s=(end - start).total_seconds())
    onsets = [(pd.Timestamp(t["onset"]), t) for t in truth]
    first: dict[str, float] = {}
    for d in detections:
        if d.time < start or d.time > end:
            continue
        owner = next((t for onset, t in onsets if d.time >= onset and _matches(d, t)), None)
        if owner is None:
            result.false_alarms += 1
            continue
        name = _name(owner)
        delay = (d.time - pd.Timestamp(owner["onset"])).total_seconds()
        first.setdefault(name, delay)
    result.delays_s = first
    result.missed = [_name(t) for _, t in onsets if _name(t) not in first]
    return result


def _name(truth: dict[str, Any]) -> str:
    return str(truth.get("fault", truth.get("name", "drift")))


HOLD_S = 3600.0  # an episode stands this long after its condition's last detection (off-delay)


def episodes(detections: Iterable[Detection], hold_s: float = HOLD_S) -> list[tuple[Detection, pd.Timestamp]]:
    """Alarm episodes: a condition (machine, signal, cause) detected again within ``hold_s`` of its last
    detection is the same episode, as the twin keeps one alert while its detector keeps alarming.
    Each is (its first detection, when it ends)."""
    hold = pd.Timedelta(seconds=hold_s)
    open_: dict[tuple[str, str, str], list[Any]] = {}
    done: list[tuple[Detection, pd.Timestamp]] = []
    for d in sorted(detections, key=lambda d: d.time):
        key = (d.machine, d.signal, d.cause)
        current = open_.get(key)
        if current is not None and d.time <= current[1]:
            current[1] = d.time + hold
            continue
        if current is not None:
            done.append((current[0], current[1]))
        open_[key] = [d, d.time + hold]
    done += [(first, end) for first, end in open_.values()]
    return sorted(done, key=lambda e: e[0].time)


@dataclass(frozen=True)
class PerSample:
    """The process-monitoring literature's scores: the share of rows in alarm before a drift's onset
    (false-alarm rate) and after it (detection rate), and false alarm episodes per 8-hour shift."""

    false_alarm_rate: float
    detection_rate: float
    false_episodes_per_shift: float


def alarm_states(
    detections: Iterable[Detection], index: pd.DatetimeIndex, hold_s: float = HOLD_S
) -> np.ndarray:
    """Each row's alarm state: inside one of the episodes (``episodes``)."""
    times = index.as_unit("ns").asi8
    state = np.zeros(len(index), dtype=bool)
    for first, end in episodes(detections, hold_s):
        state[np.searchsorted(times, first.time.value) : np.searchsorted(times, end.value)] = True
    return state


def per_sample(
    detections: list[Detection], truth: list[dict[str, Any]], index: pd.DatetimeIndex, hold_s: float = HOLD_S
) -> PerSample:
    """Per-row and per-episode scores of ``detections`` over the rows ``index`` (see ``PerSample``); a row
    after the first onset counts for detection, every row before it for false alarms."""
    state = alarm_states(detections, index, hold_s)
    onsets = sorted(pd.Timestamp(t["onset"]) for t in truth)
    after = index >= onsets[0] if onsets else np.zeros(len(index), dtype=bool)
    before = ~after
    false = [
        first
        for first, _ in episodes(detections, hold_s)
        if not any(first.time >= pd.Timestamp(t["onset"]) and _matches(first, t) for t in truth)
    ]
    monitored = (index[-1] - index[0]).total_seconds() if len(index) > 1 else 0.0
    return PerSample(
        false_alarm_rate=float(state[before].mean()) if before.any() else math.nan,
        detection_rate=float(state[after].mean()) if after.any() else math.nan,
        false_episodes_per_shift=len(false) / (monitored / SHIFT_S) if monitored > 0 else math.nan,
    )
