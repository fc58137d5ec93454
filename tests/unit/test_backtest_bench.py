"""The detection benchmark scores every method on the same run, with the same rules, at every fault scale."""

from __future__ import annotations

import math

import pytest
import typer

from bench.baselines import BASELINES, Matched
from bench.detection import (
    CALIBRATION_SEED,
    PILOT,
    Calibration,
    Results,
    Tally,
    cusum_bound,
    default_name,
    matched_name,
    plan,
    plant_seed,
    run_scenario,
)
from bench.detection_report import detection_tables, parse_magnitudes
from bench.lines import BenchLine, shipped
from plant.scenarios import SCENARIOS


def test_every_method_is_scored_on_the_same_recorded_run() -> None:
    thresholds = {"ADWIN": 1e-6, "Page-Hinkley": 200.0, "Shewhart": 5.0}
    truth, start, end, results = run_scenario("cycler-channel-offset", 2, 2.0 * 3600, thresholds)
    methods = [f(b) for b in BASELINES for f in (default_name, matched_name)]
    assert set(results) == {"linetwin", *methods}
    tallies = {name: Tally() for name in results}
    for name, detections in results.items():
        tallies[name].add("cycler-channel-offset", detections, truth, start, end)
    linetwin = tallies["linetwin"]
    assert linetwin.total_misses == 0 and linetwin.runs == {"cycler-channel-offset": 1}
    assert linetwin.false_alarms == 0
    shewhart = next(b for b in BASELINES if b.name == "Shewhart")
    assert tallies[default_name(shewhart)].false_alarms > tallies[matched_name(shewhart)].false_alarms
    assert tallies[default_name(shewhart)].false_alarms > linetwin.false_alarms


@pytest.mark.parametrize(
    ("line", "scenario", "machine"),
    [
        ("solid-state", "furnace-atmosphere-leak", "furnace1"),
        ("two-coater", "load-cell-bias", "anode_calender"),
    ],
)
def test_every_shipped_line_is_benched_in_its_own_names(line: str, scenario: str, machine: str) -> None:
    bench_line = shipped()[line]
    thresholds = {"ADWIN": 1e-6, "Page-Hinkley": 200.0, "Shewhart": 5.0}
    truth, start, end, results = run_scenario(scenario, 3, 2.5 * 3600, thresholds, line=bench_line)
    assert [t["machine"] for t in truth] == [machine]
    tally = Tally()
    tally.add(scenario, results["linetwin"], truth, start, end)
    assert (tally.total_misses, tally.false_alarms) == (0, 0)
    watched = {d.machine for name, found in results.items() if name != "linetwin" for d in found}
    assert watched <= {s.id for s in bench_line.description.steps}, "baselines watch the line's own signals"
    assert [p.scenario.name for p in plan((1.0,), 3 * 3600, bench_line)] == list(bench_line.scenarios)


def test_cusum_delay_for_a_one_sigma_shift_is_reported_against_the_lorden_bound() -> None:
    delay, bound = cusum_bound(1e4, runs=100)
    assert bound == pytest.approx(math.log(1e4) / 0.5)
    assert 0.5 * bound < delay < 1.5 * bound


def test_every_drifting_scenario_runs_at_every_scale_and_nominal_once_unscaled() -> None:
    planned = plan((1.0, 0.25), 3 * 3600)
    nominal = [p for p in planned if p.name == "nominal"]
    assert [(p.scenario, p.magnitudes) for p in nominal] == [(SCENARIOS["nominal"], (1.0, 0.25))]
    drifting = [name for name, s in SCENARIOS.items() if s.faults]
    assert sorted((p.name, p.magnitudes) for p in planned if p.name != "nominal") == sorted(
        (name, (m,)) for name in drifting for m in (1.0, 0.25)
    )
    for p in planned:
        full = SCENARIOS[p.name].faults
        assert [f.magnitude for f in p.scenario.faults] == pytest.approx(
            [p.magnitudes[0] * f.magnitude for f in full] if full else []
        )


@pytest.mark.parametrize("line", [PILOT, PILOT.realistic()], ids=["clean", "realistic"])
def test_faults_start_after_calibration_and_formation_runs_long_enough_for_channel_cells(
    line: BenchLine,
) -> None:
    timing = line.timing
    assert timing.train_s < timing.onset_s < timing.run_s and timing.onset_s < timing.cell_onset_s
    for p in plan((1.0,), timing.run_s, line):
        formation = bool(p.scenario.faults) and p.scenario.machines == {"cycler1"}
        assert p.duration_s == (timing.cell_run_s if formation else timing.run_s)
        onsets = {f.onset_s for f in p.scenario.faults}
        expected = timing.cell_onset_s if formation else timing.onset_s
        assert onsets == ({expected} if p.scenario.faults else set())
    assert {p.duration_s for p in plan((1.0,), 20 * 3600, line)} == {20 * 3600}


def test_a_scaled_run_is_scored_against_its_scaled_ground_truth_with_the_matched_baselines_only() -> None:
    thresholds = {"ADWIN": 1e-6, "Page-Hinkley": 200.0, "Shewhart": 5.0}
    scenario = SCENARIOS["load-cell-bias"]
    truth, _, _, results = run_scenario(scenario.scaled(0.5), 2, 1.5 * 3600, thresholds, defaults=False)
    assert set(results) == {"linetwin", *(matched_name(b) for b in BASELINES)}
    (drift,) = truth
    assert drift["magnitude"] == 0.5 * scenario.faults[0].magnitude


def test_fault_scales_are_read_largest_first_and_refused_unless_positive_and_finite() -> None:
    assert parse_magnitudes("0.25,1,0.5,1") == (1.0, 0.5, 0.25)
    for text in ("", "1,a", "1,0", "-0.5", "nan", "inf"):
        with pytest.raises(typer.BadParameter):
            parse_magnitudes(text)


def test_the_report_has_a_table_per_scale_the_misses_by_scale_and_the_defaults_at_the_largest() -> None:
    compared = ["linetwin", *(matched_name(b) for b in BASELINES)]
    by_magnitude = {m: {name: Tally() for name in compared} for m in (1.0, 0.5)}
    by_magnitude[1.0] |= {default_name(b): Tally() for b in BASELINES}
    for m, misses in ((1.0, 0), (0.5, 2)):
        by_magnitude[m]["linetwin"].misses["pump-wear"] = misses
    overall = {name: Tally(misses={"pump-wear": 2}) for name in compared}
    results = Results(by_magnitude, overall, {}, runs=3, elapsed_s=1.0, plant_s=9 * 3600)
    calibration = Calibration({b.name: Matched(b.default, 0.5, True) for b in BASELINES}, {}, 2, 1.0)
    tables = detection_tables(results, calibration, seeds=1, hours=3.0)
    runs = (
        "pilot-nmc, 8 scenarios × 1 seeds × 3 h, calibrated 0.75 h, onset at 1 h "
        "(formation: 8 h, onset at 4 h)"
    )
    assert [str(t.title) for t in tables] == [
        f"Drift detection at ≤ 1 false alarm per 8 h, faults ×1: {runs}",
        f"Drift detection at ≤ 1 false alarm per 8 h, faults ×0.5: {runs}",
        f"Missed drifts by fault scale at ≤ 1 false alarm per 8 h: {runs}",
        f"Baselines at their library defaults (reference), faults ×1: {runs}",
    ]
    linetwin = list(tables[2].columns[1].cells)
    assert linetwin[:3] == ["0", "2", "2"]


def test_no_two_runs_share_an_in_control_period_or_a_calibration_seed() -> None:
    planned = plan((1.0, 0.5, 0.25), 3 * 3600)
    seeds = [plant_seed(p, s) for p in planned for s in (1, 2, 3)]
    assert len(set(seeds)) == len(seeds)
    assert min(seeds) >= CALIBRATION_SEED + 10_000
    assert plant_seed(planned[0], 1) == plant_seed(planned[0], 1)
