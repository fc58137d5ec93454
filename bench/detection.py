"""``twin bench detection``: linetwin's detectors against River's ADWIN and Page-Hinkley and a Shewhart chart.

Every shipped line (``bench.lines``: the pilot line, the vendor two-coater line, the solid-state line),
every scenario of its simulator at several seeds, recorded offline; all methods see the same process in
the same Python process. linetwin runs its ``LineModel`` (physics residuals, CUSUM at ARL₀ = 10⁶ per
detector, root cause); the baselines run on the same key signals, each standardised by the same
in-control training period. A detection counts for a drift when it is on the drift's machine or one of
its listed signals after the onset; any other alarm after training is a false alarm.

Fewer misses only mean something at the same false-alarm rate, so every baseline is scored twice:
with its library default knob (ADWIN δ = 0.002, Page-Hinkley λ = 50, the classic 3σ chart), and
matched, with the knob set for linetwin's false-alarm goal (≤ 1 per 8 h shift). Matching never sees the
evaluation runs: it records nominal runs of the same length at seeds from 1001 up, runs each baseline
over them exactly as in the evaluation, and bisects a grid of knob values for the most sensitive one
whose alarms per shift stay within the budget (``bench.baselines.match``). Also measured: linetwin's
CUSUM delay for a 1σ mean shift against the Lorden bound ln(ARL₀)/(δ²/2).

The magnitude axis: the scenarios' faults are large enough that even a plain chart catches them, and a
benchmark where every method catches everything cannot tell a Shewhart chart (blind to small sustained
shifts) from CUSUM (near the Lorden bound on them). So every drifting scenario also runs with its faults
scaled down (``Scenario.scaled``: magnitude × factor, same onset and ramp time, so a ramp's slope shrinks
with it), nominal runs once, unscaled, and counts at every scale. Thresholds stay as matched and
linetwin's limits as set by ARL₀: nothing is tuned per scale. The library defaults, a reference for what
they cost in false alarms, run at the largest scale only. ``bench.detection_report`` prints the tables.

Formation scenarios run longer: a cycler channel forms one cell every ~19 min, so after 1 h a channel has
made three cells, too few for any method to tell a small calibration drift from the channel's static
offset, or a rising K-value tail from chance. How long the twin calibrates, when faults start and how
long runs last is the line's ``Timing`` (``bench.lines``): the realistic simulators get a longer
calibration, and every method the same recording.

Every run draws its own plant seed from its scenario, scale and seed (``plant_seed``). With the bench's
seed alone, every scenario at seed 3 replayed the same in-control hours before its onset: two chance
alarms in one seed's two hours were counted in each of 40 runs, as 2.3 per shift.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from bench.baselines import (
    BASELINES,
    Baseline,
    InControl,
    Matched,
    false_alarms_per_shift,
    match,
    run_baseline,
)
from bench.lines import BenchLine, Run, shipped
from models.backtest import SHIFT_S, Detection, score
from models.detectors import CUSUM
from models.line import LineModel
from models.replay import alarms, replay
from models.steps.base import Tuning
from plant.scenarios import Scenario
from twin.alarmrates import rates

CALIBRATION_SEED = 1001
FALSE_ALARM_BUDGET = 1.0  # per 8 h shift: linetwin's goal
REALARM_S = Tuning().realarm_s
PILOT = shipped()["pilot-nmc"]


@dataclass
class Tally:
    """Results of one method over all runs."""

    delays_s: dict[str, list[float]] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    false_alarms: int = 0
    monitored_s: float = 0.0
    in_control_false_alarms: int = 0
    in_control_s: float = 0.0
    #: the alarm-system figures (``twin.alarmrates``) over every run: raises, the most in any ten
    #: minutes of one run, floods, and the conditions that chattered
    raised: int = 0
    peak_per_10_min: int = 0
    floods: int = 0
    chattering: set[str] = field(default_factory=set)

    def add(
        self, scenario: str, detections: list[Detection], truth: list[dict[str, Any]], start: Any, end: Any
    ) -> None:
        result = score(detections, truth, start, end)
        figures = rates(episodes(detections), [], start.value, end.value)
        self.raised += figures.raised
        self.peak_per_10_min = max(self.peak_per_10_min, figures.peak_per_10_min)
        self.floods += figures.floods
        self.chattering |= set(figures.chattering)
        self.false_alarms += result.false_alarms
        self.monitored_s += result.monitored_s
        quiet_end = min([end, *(pd.Timestamp(t["onset"]) for t in truth)])
        self.in_control_s += max((quiet_end - start).total_seconds(), 0.0)
        self.in_control_false_alarms += sum(start <= d.time < quiet_end for d in detections)
        if truth:
            self.runs[scenario] = self.runs.get(scenario, 0) + 1
            self.delays_s.setdefault(scenario, []).extend(result.delays_s.values())
            self.misses[scenario] = self.misses.get(scenario, 0) + len(result.missed)

    @property
    def alarms_per_10_min(self) -> float:
        return self.raised / (self.monitored_s / 600) if self.monitored_s else math.nan

    @property
    def false_alarms_per_shift(self) -> float:
        return self.false_alarms / (self.monitored_s / SHIFT_S) if self.monitored_s else math.nan

    @property
    def in_control_false_alarms_per_shift(self) -> float:
        """Alarms before any onset (and on nominal runs): the rate the matching is meant to hold."""
        return self.in_control_false_alarms / (self.in_control_s / SHIFT_S) if self.in_control_s else math.nan

    @property
    def total_misses(self) -> int:
        return sum(self.misses.values())


def episodes(detections: list[Detection]) -> list[tuple[str, int]]:
    """(condition key, raised at) of each alarm episode: a condition raised again within the twin's
    re-alarm window (a consequence listed on its alarm) is the alarm already raised."""
    last: dict[str, int] = {}
    raised = []
    for d in sorted(detections, key=lambda d: d.time):
        key, at = f"{d.machine}/{d.signal}/{d.cause}", d.time.value
        if key not in last or at - last[key] >= REALARM_S * 1e9:
            raised.append((key, at))
            last[key] = at
    return raised


def _cell_streams(cells: pd.DataFrame) -> dict[str, pd.Series]:
    formed = (
        cells.assign(time=pd.to_datetime(cells["formation_end"], utc=True)).set_index("time").sort_index()
    )
    aged = cells.dropna(subset=["k_value"])
    aged = aged.assign(time=pd.to_datetime(aged["aging_end"], utc=True)).set_index("time").sort_index()
    return {"discharge_capacity": formed["discharge_capacity"], "k_value": aged["k_value"]}


def key_streams(run: Run, line: BenchLine) -> dict[str, pd.Series]:
    """What the baselines watch: the line's key process signals and its cells' capacity and K-value."""
    streams = {c: run.process[c] for c in line.key_signals}
    if run.cells is None or line.cell_step is None:
        return streams
    return streams | {f"{line.cell_step}.{k}": s for k, s in _cell_streams(run.cells).items()}


def default_name(baseline: Baseline) -> str:
    return f"{baseline.name} default"


def matched_name(baseline: Baseline) -> str:
    return f"{baseline.name} matched"


def run_scenario(
    scenario: str | Scenario,
    seed: int,
    duration_s: float,
    matched: dict[str, float] | None = None,
    defaults: bool = True,
    line: BenchLine = PILOT,
) -> tuple[list[dict[str, Any]], pd.Timestamp, pd.Timestamp, dict[str, list[Detection]]]:
    """Ground truth, scoring window and every method's detections on one recorded run of ``line``.

    Baselines run at their library default unless ``defaults`` is False, and with ``matched`` (knob
    value by baseline name) also there.
    """
    spec = line.scenarios[scenario] if isinstance(scenario, str) else scenario
    run = line.recorder(spec, seed, duration_s)
    process = run.process
    train_s = line.timing.train_s
    train_end = process.index[0] + pd.Timedelta(seconds=train_s)
    model = LineModel(line.description.line, description=line.description, calibration_s=train_s)
    results = {"linetwin": [Detection.of(f) for f in alarms(replay(model, process, run.cells))]}
    streams = key_streams(run, line)
    for baseline in BASELINES:
        if defaults:
            results[default_name(baseline)] = run_baseline(
                partial(baseline.build, baseline.default), default_name(baseline), streams, train_end
            )
        if matched is not None:
            value = matched[baseline.name]
            results[matched_name(baseline)] = run_baseline(
                partial(baseline.build, value), matched_name(baseline), streams, train_end
            )
    return run.ground_truth, train_end, process.index[-1], results


def calibration_runs(count: int, duration_s: float, line: BenchLine = PILOT) -> list[InControl]:
    """Nominal runs at seeds the evaluation never uses, for choosing the baselines' thresholds."""
    runs = []
    for seed in range(CALIBRATION_SEED, CALIBRATION_SEED + count):
        run = line.recorder(line.scenarios["nominal"], seed, duration_s)
        train_end = run.process.index[0] + pd.Timedelta(seconds=line.timing.train_s)
        runs.append(InControl.of(key_streams(run, line), train_end, run.process.index[-1]))
    return runs


@dataclass(frozen=True)
class Calibration:
    """The matched knob of every baseline, and each default's false alarms on the same calibration runs."""

    matched: dict[str, Matched]
    default_rate: dict[str, float]
    runs: int
    elapsed_s: float


def calibrate(count: int, duration_s: float, budget: float, line: BenchLine = PILOT) -> Calibration:
    started = time.perf_counter()
    runs = calibration_runs(count, duration_s, line)
    matched = {b.name: match(b, runs, budget) for b in BASELINES}
    default_rate = {b.name: false_alarms_per_shift(partial(b.build, b.default), runs) for b in BASELINES}
    return Calibration(matched, default_rate, count, time.perf_counter() - started)


def cusum_bound(arl0: float = 1e4, runs: int = 400, seed: int = 0) -> tuple[float, float]:
    """Mean detection delay of linetwin's CUSUM for a 1σ shift from the start, and the Lorden bound."""
    rng = np.random.default_rng(seed)
    delays = []
    for _ in range(runs):
        detector = CUSUM(arl0=arl0)
        while not detector.drift_detected:
            detector.update(rng.normal(1.0, 1.0))
        delays.append(detector.n)
    return float(np.mean(delays)), math.log(arl0) / 0.5


@dataclass(frozen=True)
class Planned:
    """A scenario to record, under its own name, for how long, and the fault scales its runs count in."""

    name: str
    scenario: Scenario
    magnitudes: tuple[float, ...]
    duration_s: float


def plant_seed(planned: Planned, seed: int) -> int:
    """The simulator's seed of one run: reproducible, its own in-control period, never a calibration
    seed (``CALIBRATION_SEED`` up)."""
    key = f"{planned.name}|{','.join(map(str, planned.magnitudes))}|{seed}".encode()
    return CALIBRATION_SEED + 10_000 + zlib.crc32(key) % 1_000_000_000


def plan(magnitudes: tuple[float, ...], duration_s: float, line: BenchLine = PILOT) -> list[Planned]:
    """Every drifting scenario once per scale; nominal, which has nothing to scale, once for all scales.

    Faults start at the line's ``Timing``: process faults at ``onset_s``, formation faults at
    ``cell_onset_s`` in runs of at least ``cell_run_s``.
    """
    timing = line.timing
    planned: list[Planned] = []
    for name, scenario in line.scenarios.items():
        if not scenario.faults:
            planned.append(Planned(name, scenario, magnitudes, duration_s))
        elif scenario.machines <= line.cell_machines:
            cells = scenario.delayed(timing.cell_onset_s)
            run_s = max(duration_s, timing.cell_run_s)
            planned.extend(Planned(name, cells.scaled(m), (m,), run_s) for m in magnitudes)
        else:
            process = scenario.delayed(timing.onset_s)
            planned.extend(Planned(name, process.scaled(m), (m,), duration_s) for m in magnitudes)
    return planned


@dataclass(frozen=True)
class Results:
    """Tallies per fault scale (method → tally), over all runs once each, the CUSUM bounds and effort."""

    by_magnitude: dict[float, dict[str, Tally]]
    overall: dict[str, Tally]
    bounds: dict[float, tuple[float, float]]
    runs: int
    elapsed_s: float
    plant_s: float


def run_benchmark(
    seeds: list[int],
    duration_s: float,
    calibration: Calibration,
    magnitudes: tuple[float, ...],
    progress: Callable[[str], None] | None = None,
    line: BenchLine = PILOT,
) -> Results:
    """linetwin and the matched baselines at every scale; the library defaults at the largest only."""
    matched = {name: m.value for name, m in calibration.matched.items()}
    compared = ["linetwin", *(matched_name(b) for b in BASELINES)]
    reference = max(magnitudes)
    by_magnitude = {m: {name: Tally() for name in compared} for m in magnitudes}
    by_magnitude[reference] |= {default_name(b): Tally() for b in BASELINES}
    overall = {name: Tally() for name in compared}
    started = time.perf_counter()
    runs, plant_s = 0, 0.0
    for planned in plan(magnitudes, duration_s, line):
        for seed in seeds:
            if progress is not None:
                progress(f"{planned.scenario.name} seed {seed}")
            truth, start, end, results = run_scenario(
                planned.scenario,
                plant_seed(planned, seed),
                planned.duration_s,
                matched,
                defaults=reference in planned.magnitudes,
                line=line,
            )
            runs += 1
            plant_s += planned.duration_s
            for name, detections in results.items():
                if name in overall:
                    overall[name].add(planned.scenario.name, detections, truth, start, end)
                for m in planned.magnitudes:
                    if name in by_magnitude[m]:
                        by_magnitude[m][name].add(planned.name, detections, truth, start, end)
    bounds = {arl0: cusum_bound(arl0) for arl0 in (1e4, 1e6)}
    return Results(by_magnitude, overall, bounds, runs, time.perf_counter() - started, plant_s)
