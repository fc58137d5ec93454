"""``twin bench detection``: linetwin's detectors against River's ADWIN and Page-Hinkley and a Shewhart chart.

Every scenario of the simulator at several seeds, recorded offline; all methods see the same process in
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
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from bench.baselines import (
    BASELINES,
    Baseline,
    InControl,
    Matched,
    false_alarms_per_shift,
    match,
    run_baseline,
)
from models.backtest import SHIFT_S, Detection, score
from models.detectors import CUSUM
from models.line import LineModel
from models.replay import replay
from plant.recording import Recording, record
from plant.scenarios import SCENARIOS

TRAIN_S = 2700.0
CALIBRATION_SEED = 1001
FALSE_ALARM_BUDGET = 1.0  # per 8 h shift: linetwin's goal
KEY_SIGNALS = (
    "coater1.pump_flow",
    "coater1.web_speed",
    "coater1.dry_loading",
    "coater1.slurry_density",
    "coater1.residual_solvent",
    "coater1.dryer_zone1_temperature",
    "coater1.dryer_zone2_temperature",
    "coater1.dryer_zone3_temperature",
    "calender1.thickness",
    "calender1.porosity",
    "calender1.roll_temperature",
    "calender1.line_load",
    "calender1.incoming_loading",
)


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

    def add(
        self, scenario: str, detections: list[Detection], truth: list[dict[str, Any]], start: Any, end: Any
    ) -> None:
        result = score(detections, truth, start, end)
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
    def false_alarms_per_shift(self) -> float:
        return self.false_alarms / (self.monitored_s / SHIFT_S) if self.monitored_s else math.nan

    @property
    def in_control_false_alarms_per_shift(self) -> float:
        """Alarms before any onset (and on nominal runs): the rate the matching is meant to hold."""
        return self.in_control_false_alarms / (self.in_control_s / SHIFT_S) if self.in_control_s else math.nan

    @property
    def total_misses(self) -> int:
        return sum(self.misses.values())


def _cell_streams(cells: pd.DataFrame) -> dict[str, pd.Series]:
    formed = (
        cells.assign(time=pd.to_datetime(cells["formation_end"], utc=True)).set_index("time").sort_index()
    )
    aged = cells.dropna(subset=["k_value"])
    aged = aged.assign(time=pd.to_datetime(aged["aging_end"], utc=True)).set_index("time").sort_index()
    return {"discharge_capacity": formed["discharge_capacity"], "k_value": aged["k_value"]}


def key_streams(rec: Recording) -> dict[str, pd.Series]:
    """What the baselines watch: the key process signals and the cells' capacity and K-value."""
    streams = {c: rec.process[c] for c in KEY_SIGNALS}
    return streams | {f"cycler1.{k}": s for k, s in _cell_streams(rec.cells).items()}


def default_name(baseline: Baseline) -> str:
    return f"{baseline.name} default"


def matched_name(baseline: Baseline) -> str:
    return f"{baseline.name} matched"


def run_scenario(
    scenario: str, seed: int, duration_s: float, matched: dict[str, float] | None = None
) -> tuple[list[dict[str, Any]], pd.Timestamp, pd.Timestamp, dict[str, list[Detection]]]:
    """Ground truth, scoring window and every method's detections on one recorded run.

    Baselines run at their library default; with ``matched`` (knob value by baseline name) also there.
    """
    rec = record(scenario, seed, duration_s)
    process = rec.process
    train_end = process.index[0] + pd.Timedelta(seconds=TRAIN_S)
    model = LineModel(calibration_s=TRAIN_S)
    results = {"linetwin": [Detection.of(f) for f in replay(model, process, rec.cells)]}
    streams = key_streams(rec)
    for baseline in BASELINES:
        results[default_name(baseline)] = run_baseline(
            partial(baseline.build, baseline.default), default_name(baseline), streams, train_end
        )
        if matched is not None:
            value = matched[baseline.name]
            results[matched_name(baseline)] = run_baseline(
                partial(baseline.build, value), matched_name(baseline), streams, train_end
            )
    return rec.ground_truth, train_end, process.index[-1], results


def calibration_runs(count: int, duration_s: float) -> list[InControl]:
    """Nominal runs at seeds the evaluation never uses, for choosing the baselines' thresholds."""
    runs = []
    for seed in range(CALIBRATION_SEED, CALIBRATION_SEED + count):
        rec = record("nominal", seed, duration_s)
        train_end = rec.process.index[0] + pd.Timedelta(seconds=TRAIN_S)
        runs.append(InControl.of(key_streams(rec), train_end, rec.process.index[-1]))
    return runs


@dataclass(frozen=True)
class Calibration:
    """The matched knob of every baseline, and each default's false alarms on the same calibration runs."""

    matched: dict[str, Matched]
    default_rate: dict[str, float]
    runs: int
    elapsed_s: float


def calibrate(count: int, duration_s: float, budget: float) -> Calibration:
    started = time.perf_counter()
    runs = calibration_runs(count, duration_s)
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


def run_benchmark(
    seeds: list[int],
    duration_s: float,
    calibration: Calibration,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Tally], dict[float, tuple[float, float]], float]:
    matched = {name: m.value for name, m in calibration.matched.items()}
    names = ["linetwin", *(matched_name(b) for b in BASELINES), *(default_name(b) for b in BASELINES)]
    tallies = {name: Tally() for name in names}
    started = time.perf_counter()
    for scenario in SCENARIOS:
        for seed in seeds:
            if progress is not None:
                progress(f"{scenario} seed {seed}")
            truth, start, end, results = run_scenario(scenario, seed, duration_s, matched)
            for name, detections in results.items():
                tallies[name].add(scenario, detections, truth, start, end)
    bounds = {arl0: cusum_bound(arl0) for arl0 in (1e4, 1e6)}
    return tallies, bounds, time.perf_counter() - started


def detection_command(
    seeds: Annotated[int, typer.Option(min=1, help="seeds per scenario")] = 3,
    hours: Annotated[float, typer.Option(min=1.5, help="plant hours per run (drifts start after 1 h)")] = 3.0,
    calibration_runs: Annotated[
        int, typer.Option(min=1, help="nominal runs (seeds 1001…) that set the matched thresholds")
    ] = 8,
) -> None:
    """Detection delay, misses and false alarms per 8 h: linetwin vs ADWIN, Page-Hinkley, Shewhart."""
    console = Console()
    with console.status("recording and detecting") as status:
        status.update(f"matching baseline thresholds on {calibration_runs} nominal runs")
        calibration = calibrate(calibration_runs, hours * 3600, FALSE_ALARM_BUDGET)
        tallies, bounds, elapsed = run_benchmark(
            list(range(1, seeds + 1)),
            hours * 3600,
            calibration,
            lambda what: status.update(f"running {what}"),
        )
    for table in detection_tables(tallies, calibration, seeds, hours):
        console.print(table)
    for arl0, (delay, bound) in bounds.items():
        console.print(
            f"CUSUM, 1σ mean shift, ARL₀ = {arl0:.0e}: mean delay {delay:.1f} samples, "
            f"bound ln(ARL₀)/(δ²/2) = {bound:.1f}, ratio {delay / bound:.2f}"
        )
    console.print(
        f"Matched thresholds: the most sensitive knob with ≤ {FALSE_ALARM_BUDGET:g} false alarm per 8 h on "
        f"{calibration.runs} nominal runs of {hours:g} h, seeds {CALIBRATION_SEED}–"
        f"{CALIBRATION_SEED + calibration.runs - 1} (never evaluated); false alarms per 8 h there:"
    )
    for baseline in BASELINES:
        m = calibration.matched[baseline.name]
        note = "" if m.within_budget else " (strictest value searched: budget not reached)"
        console.print(
            f"  {baseline.name}: matched {baseline.knob} = {m.value:.3g}: {m.false_alarms_per_shift:.2f}"
            f"{note}; default {baseline.knob} = {baseline.default:g}: "
            f"{calibration.default_rate[baseline.name]:.2f}"
        )
    console.print(
        f"Runtime: thresholds matched in {calibration.elapsed_s:.0f} s, "
        f"{len(SCENARIOS) * seeds} runs of {hours:g} plant hours in {elapsed:.0f} s"
    )


def detection_tables(
    tallies: dict[str, Tally], calibration: Calibration, seeds: int, hours: float
) -> tuple[Table, Table]:
    """At the matched false-alarm budget (linetwin beside the matched baselines), and at library defaults."""
    runs = f"{len(SCENARIOS)} scenarios × {seeds} seeds × {hours:g} h"
    matched = {"linetwin": tallies["linetwin"]}
    for b in BASELINES:
        matched[f"{b.name}\n{b.knob}={calibration.matched[b.name].value:.3g}"] = tallies[matched_name(b)]
    defaults = {f"{b.name}\n{b.knob}={b.default:g}": tallies[default_name(b)] for b in BASELINES}
    return (
        _table(
            f"Drift detection at ≤ {FALSE_ALARM_BUDGET:g} false alarm per 8 h: {runs}",
            "baseline thresholds matched on separate nominal runs; median delay in minutes from onset "
            "(missed/runs)",
            matched,
        ),
        _table(
            f"Baselines at their library defaults (reference): {runs}",
            "what the defaults cost in false alarms; median delay in minutes (missed/runs)",
            defaults,
        ),
    )


def _table(title: str, caption: str, columns: dict[str, Tally]) -> Table:
    table = Table(title=title, caption=caption)
    table.add_column("scenario")
    for header in columns:
        table.add_column(header, justify="right")
    for scenario in SCENARIOS:
        if scenario == "nominal":
            continue
        cells = []
        for tally in columns.values():
            delays = tally.delays_s.get(scenario, [])
            median = f"{np.median(delays) / 60:.1f}" if delays else "–"
            cells.append(f"{median} ({tally.misses.get(scenario, 0)}/{tally.runs.get(scenario, 0)})")
        table.add_row(scenario, *cells)
    table.add_row("missed drifts", *[str(t.total_misses) for t in columns.values()])
    table.add_row(
        "false alarms / 8 h in control",
        *[f"{t.in_control_false_alarms_per_shift:.2f}" for t in columns.values()],
    )
    table.add_row("false alarms / 8 h, all", *[f"{t.false_alarms_per_shift:.2f}" for t in columns.values()])
    return table
