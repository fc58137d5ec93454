"""What ``twin bench detection`` prints: per fault scale, misses by scale, defaults, bounds, thresholds.

Every table puts linetwin beside the baselines at the matched false-alarm rate; the library defaults get
their own reference table, since at their rates a short delay is mostly a coincidence of false alarms.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from bench.arl import delays
from bench.baselines import BASELINES
from bench.detection import (
    CALIBRATION_SEED,
    FALSE_ALARM_BUDGET,
    PILOT,
    Calibration,
    Results,
    Tally,
    calibrate,
    default_name,
    matched_name,
    run_benchmark,
)
from bench.lines import BenchLine, shipped

PREWHITENED_ARL0 = 500.0  # as ``twin bench arl``
MAGNITUDES = "1,0.5,0.25"  # fault scales by default: the whole bench stays within ~8 min on two cores


def parse_magnitudes(text: str) -> tuple[float, ...]:
    """Fault scales from ``"1,0.5,0.25"``: distinct, positive and finite, largest first."""
    try:
        values = {float(v) for v in text.split(",")}
    except ValueError:
        raise typer.BadParameter(f"{text!r}: give fault scales as numbers, e.g. 1,0.5,0.25") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise typer.BadParameter(f"{text!r}: every fault scale must be positive and finite")
    return tuple(sorted(values, reverse=True))


def detection_command(
    seeds: Annotated[int, typer.Option(min=1, help="seeds per scenario")] = 3,
    hours: Annotated[
        float | None,
        typer.Option(min=1.5, help="plant hours per run (default 3, realistic 11; see bench.lines.Timing)"),
    ] = None,
    magnitudes: Annotated[
        str, typer.Option(help="fault scales, comma-separated: every drifting scenario runs at each")
    ] = MAGNITUDES,
    calibration_runs: Annotated[
        int, typer.Option(min=1, help="nominal runs (seeds 1001…) that set the matched thresholds")
    ] = 8,
    line: Annotated[
        list[str] | None,
        typer.Option(help="a shipped line (lines/<name>.toml); repeat for more; default all"),
    ] = None,
    realistic: Annotated[
        bool,
        typer.Option(help="the simulators' in-control disturbances of a real line (plant.disturbances)"),
    ] = False,
) -> None:
    """Delay, misses and false alarms per 8 h by fault scale: linetwin vs ADWIN, Page-Hinkley, Shewhart,
    on every shipped line."""
    scales = parse_magnitudes(magnitudes)
    lines = shipped()
    unknown = sorted(set(line or ()) - set(lines))
    if unknown:
        raise typer.BadParameter(f"unknown line(s) {', '.join(unknown)}; shipped: {', '.join(lines)}")
    console = Console()
    for name in line or list(lines):
        chosen = lines[name].realistic() if realistic else lines[name]
        run_h = hours if hours is not None else chosen.timing.run_s / 3600
        _run_line(console, chosen, seeds, run_h, scales, calibration_runs)
    for step, mean, bound in delays(PREWHITENED_ARL0):
        console.print(
            f"Prewhitened CUSUM on AR(1) φ = 0.9, t₃ data, sustained step of {step:g} σ of the series, "
            f"ARL₀ = {PREWHITENED_ARL0:g}: mean delay {mean:.1f} samples, Lorden bound for the shift its "
            f"residuals see {bound:.1f}, ratio {mean / bound:.2f}"
        )


def _run_line(
    console: Console,
    line: BenchLine,
    seeds: int,
    hours: float,
    scales: tuple[float, ...],
    calibration_runs: int,
) -> None:
    console.rule(f"line {line.name}: {line.description.name}")
    with console.status(f"{line.name}: recording and detecting") as status:
        status.update(f"{line.name}: matching baseline thresholds on {calibration_runs} nominal runs")
        calibration = calibrate(calibration_runs, hours * 3600, FALSE_ALARM_BUDGET, line)
        results = run_benchmark(
            list(range(1, seeds + 1)),
            hours * 3600,
            calibration,
            scales,
            lambda what: status.update(f"{line.name}: running {what}"),
            line,
        )
    for table in detection_tables(results, calibration, seeds, hours, line):
        console.print(table)
    for arl0, (delay, bound) in results.bounds.items():
        console.print(
            f"CUSUM, 1σ mean shift, ARL₀ = {arl0:.0e}: mean delay {delay:.1f} samples, "
            f"bound ln(ARL₀)/(δ²/2) = {bound:.1f}, ratio {delay / bound:.2f}"
        )
    ours = results.overall["linetwin"]
    console.print(
        f"linetwin's alarm system over every run once (EEMUA 191, ISA-18.2): {ours.alarms_per_10_min:.3f} "
        f"alarms per 10 min (goal about 1), at most {ours.peak_per_10_min} in any 10 min of a run, "
        f"{ours.floods} floods (> 10 in 10 min), {len(ours.chattering)} chattering conditions "
        f"(3 raises in a minute)"
    )
    console.print(
        f"Matched thresholds: the most sensitive knob with ≤ {FALSE_ALARM_BUDGET:g} false alarm per 8 h on "
        f"{calibration.runs} nominal runs of {hours:g} h, seeds {CALIBRATION_SEED}–"
        f"{CALIBRATION_SEED + calibration.runs - 1} (never evaluated), the same at every fault scale; "
        "false alarms per 8 h there:"
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
        f"{results.runs} runs, {results.plant_s / 3600:g} plant hours, in {results.elapsed_s:.0f} s"
    )


def detection_tables(
    results: Results, calibration: Calibration, seeds: int, hours: float, line: BenchLine = PILOT
) -> list[Table]:
    """Per fault scale at the matched budget, misses by scale, and the library defaults at the largest."""
    timing = line.timing
    runs = (
        f"{line.name}, {len(line.scenarios)} scenarios × {seeds} seeds × {hours:g} h, calibrated "
        f"{timing.train_s / 3600:g} h, onset at {timing.onset_s / 3600:g} h"
    )
    if line.cell_machines:
        runs += (
            f" (formation: {max(hours, timing.cell_run_s / 3600):g} h, onset at "
            f"{timing.cell_onset_s / 3600:g} h)"
        )
    scenarios = list(line.scenarios)
    budget = f"≤ {FALSE_ALARM_BUDGET:g} false alarm per 8 h"
    tables = []
    for m, tallies in results.by_magnitude.items():
        tables.append(
            _table(
                f"Drift detection at {budget}, faults ×{m:g}: {runs}",
                "baseline thresholds matched on separate nominal runs; median delay in minutes from onset "
                "(missed/runs); nominal runs unscaled",
                _matched_columns(tallies, calibration),
                scenarios,
            )
        )
    tables.append(_misses_table(results, calibration, f"Missed drifts by fault scale at {budget}: {runs}"))
    reference = max(results.by_magnitude)
    tallies = results.by_magnitude[reference]
    tables.append(
        _table(
            f"Baselines at their library defaults (reference), faults ×{reference:g}: {runs}",
            "what the defaults cost in false alarms; median delay in minutes (missed/runs)",
            {f"{b.name}\n{b.knob}={b.default:g}": tallies[default_name(b)] for b in BASELINES},
            scenarios,
        )
    )
    return tables


def _matched_columns(tallies: dict[str, Tally], calibration: Calibration) -> dict[str, Tally]:
    columns = {"linetwin": tallies["linetwin"]}
    for b in BASELINES:
        columns[f"{b.name}\n{b.knob}={calibration.matched[b.name].value:.3g}"] = tallies[matched_name(b)]
    return columns


def _misses_table(results: Results, calibration: Calibration, title: str) -> Table:
    overall = _matched_columns(results.overall, calibration)
    table = Table(title=title, caption="false alarms over every run once (nominal runs once)")
    table.add_column("faults")
    for header in overall:
        table.add_column(header, justify="right")
    for m, tallies in results.by_magnitude.items():
        drifts = sum(tallies["linetwin"].runs.values())
        columns = _matched_columns(tallies, calibration)
        table.add_row(f"×{m:g} ({drifts} drifts)", *[str(t.total_misses) for t in columns.values()])
    drifts = sum(results.overall["linetwin"].runs.values())
    table.add_row(f"all ({drifts} drifts)", *[str(t.total_misses) for t in overall.values()])
    _add_false_alarm_rows(table, overall)
    return table


def _table(title: str, caption: str, columns: dict[str, Tally], scenarios: list[str]) -> Table:
    table = Table(title=title, caption=caption)
    table.add_column("scenario")
    for header in columns:
        table.add_column(header, justify="right")
    for scenario in scenarios:
        if scenario == "nominal":
            continue
        cells = []
        for tally in columns.values():
            delays = tally.delays_s.get(scenario, [])
            median = f"{np.median(delays) / 60:.1f}" if delays else "–"
            cells.append(f"{median} ({tally.misses.get(scenario, 0)}/{tally.runs.get(scenario, 0)})")
        table.add_row(scenario, *cells)
    table.add_row("missed drifts", *[str(t.total_misses) for t in columns.values()])
    _add_false_alarm_rows(table, columns)
    return table


def _add_false_alarm_rows(table: Table, columns: dict[str, Tally]) -> None:
    table.add_row(
        "false alarms / 8 h in control",
        *[f"{t.in_control_false_alarms_per_shift:.2f}" for t in columns.values()],
    )
    table.add_row("false alarms / 8 h, all", *[f"{t.false_alarms_per_shift:.2f}" for t in columns.values()])
