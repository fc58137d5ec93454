"""``twin bench detection``: linetwin's detectors against River's ADWIN and Page-Hinkley and a 3σ Shewhart.

Every scenario of the simulator at several seeds, recorded offline; all methods see the same process in
the same Python process. linetwin runs its ``LineModel`` (physics residuals, CUSUM at ARL₀ = 10⁶ per
detector, root cause); the baselines run on the same key signals, each standardised by the same
in-control training period, with their library defaults (ADWIN δ = 0.002, Page-Hinkley threshold 50)
and the classic 3σ individuals chart. A detection counts for a drift when it is on the drift's machine
or one of its listed signals after the onset; any other alarm after training is a false alarm. Also
measured: linetwin's CUSUM delay for a 1σ mean shift against the Lorden bound ln(ARL₀)/(δ²/2).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.table import Table
from river import drift

from models.backtest import SHIFT_S, Detection, score
from models.detectors import CUSUM, robust_location_scale
from models.line import LineModel
from models.replay import replay
from plant.recording import record
from plant.scenarios import SCENARIOS

TRAIN_S = 2700.0
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
CELL_SIGNALS = ("discharge_capacity", "k_value")


def _shewhart() -> Any:
    return _Shewhart3Sigma()


class _Shewhart3Sigma:
    """The plain chart an engineer starts with: alarm beyond ±3σ of the training period."""

    drift_detected = False

    def update(self, z: float) -> None:
        self.drift_detected = abs(z) > 3.0


BASELINES: dict[str, Callable[[], Any]] = {
    "ADWIN": drift.ADWIN,
    "PageHinkley": drift.PageHinkley,
    "Shewhart 3σ": _shewhart,
}


@dataclass
class Tally:
    """Results of one method over all runs."""

    delays_s: dict[str, list[float]] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    false_alarms: int = 0
    monitored_s: float = 0.0

    def add(
        self, scenario: str, detections: list[Detection], truth: list[dict[str, Any]], start: Any, end: Any
    ) -> None:
        result = score(detections, truth, start, end)
        self.false_alarms += result.false_alarms
        self.monitored_s += result.monitored_s
        if truth:
            self.runs[scenario] = self.runs.get(scenario, 0) + 1
            self.delays_s.setdefault(scenario, []).extend(result.delays_s.values())
            self.misses[scenario] = self.misses.get(scenario, 0) + len(result.missed)

    @property
    def false_alarms_per_shift(self) -> float:
        return self.false_alarms / (self.monitored_s / SHIFT_S) if self.monitored_s else math.nan

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


def _baseline(
    make: Callable[[], Any], name: str, streams: dict[str, pd.Series], train_end: Any
) -> list[Detection]:
    """Run one baseline per stream, standardised by the stream's training part."""
    detections = []
    for column, series in streams.items():
        training, history = series[series.index <= train_end], series[series.index > train_end]
        if len(training) < 10:
            training, history = series.iloc[: len(series) // 3], series.iloc[len(series) // 3 :]
        mu, sigma = robust_location_scale(training.to_numpy(dtype=float))
        detector = make()
        machine, _, signal = column.rpartition(".")
        for t, value in zip(history.index, (history.to_numpy(dtype=float) - mu) / sigma, strict=True):
            if not math.isfinite(value):
                continue
            detector.update(float(value))
            if detector.drift_detected:
                detections.append(Detection(t, machine, signal, name, t, float(value) * sigma))
    return detections


def run_scenario(
    scenario: str, seed: int, duration_s: float
) -> tuple[list[dict[str, Any]], pd.Timestamp, pd.Timestamp, dict[str, list[Detection]]]:
    """Ground truth, scoring window and every method's detections on one recorded run."""
    rec = record(scenario, seed, duration_s)
    process = rec.process
    train_end = process.index[0] + pd.Timedelta(seconds=TRAIN_S)
    model = LineModel(calibration_s=TRAIN_S)
    linetwin = [Detection.of(f) for f in replay(model, process, rec.cells)]
    streams = {c: process[c] for c in KEY_SIGNALS}
    streams |= {f"cycler1.{k}": s for k, s in _cell_streams(rec.cells).items()}
    results = {"linetwin": linetwin}
    for name, make in BASELINES.items():
        results[name] = _baseline(make, name, streams, train_end)
    return rec.ground_truth, train_end, process.index[-1], results


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
    seeds: list[int], duration_s: float, progress: Callable[[str], None] | None = None
) -> tuple[dict[str, Tally], dict[float, tuple[float, float]], float]:
    tallies = {name: Tally() for name in ("linetwin", *BASELINES)}
    started = time.perf_counter()
    for scenario in SCENARIOS:
        for seed in seeds:
            if progress is not None:
                progress(f"{scenario} seed {seed}")
            truth, start, end, results = run_scenario(scenario, seed, duration_s)
            for name, detections in results.items():
                tallies[name].add(scenario, detections, truth, start, end)
    bounds = {arl0: cusum_bound(arl0) for arl0 in (1e4, 1e6)}
    return tallies, bounds, time.perf_counter() - started


def detection_command(
    seeds: Annotated[int, typer.Option(min=1, help="seeds per scenario")] = 3,
    hours: Annotated[float, typer.Option(min=1.5, help="plant hours per run (drifts start after 1 h)")] = 3.0,
) -> None:
    """Detection delay, misses and false alarms per 8 h: linetwin vs ADWIN, Page-Hinkley, Shewhart."""
    console = Console()
    with console.status("recording and detecting") as status:
        tallies, bounds, elapsed = run_benchmark(
            list(range(1, seeds + 1)), hours * 3600, lambda what: status.update(f"running {what}")
        )
    console.print(detection_table(tallies, seeds, hours))
    for arl0, (delay, bound) in bounds.items():
        console.print(
            f"CUSUM, 1σ mean shift, ARL₀ = {arl0:.0e}: mean delay {delay:.1f} samples, "
            f"bound ln(ARL₀)/(δ²/2) = {bound:.1f}, ratio {delay / bound:.2f}"
        )
    console.print(f"{len(SCENARIOS) * seeds} runs of {hours:g} plant hours in {elapsed:.0f} s")


def detection_table(tallies: dict[str, Tally], seeds: int, hours: float) -> Table:
    table = Table(title=f"drift detection: {len(SCENARIOS)} scenarios × {seeds} seeds × {hours:g} h")
    table.add_column("scenario")
    for name in tallies:
        table.add_column(f"{name}\ndelay min (missed)", justify="right")
    for scenario in SCENARIOS:
        if scenario == "nominal":
            continue
        cells = []
        for tally in tallies.values():
            delays = tally.delays_s.get(scenario, [])
            median = f"{np.median(delays) / 60:.1f}" if delays else "–"
            cells.append(f"{median} ({tally.misses.get(scenario, 0)}/{tally.runs.get(scenario, 0)})")
        table.add_row(scenario, *cells)
    table.add_row("missed drifts", *[str(t.total_misses) for t in tallies.values()])
    table.add_row("false alarms / 8 h", *[f"{t.false_alarms_per_shift:.2f}" for t in tallies.values()])
    return table
