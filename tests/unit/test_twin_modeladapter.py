"""The LineModel adapter on simulated pump wear, fed by exception as OPC UA reports it."""

from __future__ import annotations

from core.sample import Sample
from plant.line import PilotLine
from plant.scenarios import get_scenario
from twin.modeladapter import LineModelAnalyser

T0 = 1_700_000_000 * 10**9
TICK_S = 2.0


def reported_by_exception(line: PilotLine, last: dict[str, float]) -> list[Sample]:
    """One plant tick as a subscription delivers it: only the values that changed."""
    tick = line.step(TICK_S)
    time_ns = T0 + int(tick.t * 1e9)
    samples = []
    for column, value in tick.values.items():
        machine, _, signal = column.partition(".")
        if isinstance(value, float) and last.get(column) != value:
            last[column] = value
            roll = tick.text.get(f"{machine}.roll_id")
            samples.append(Sample("l1", machine, signal, value, "", time_ns, time_ns, roll_id=roll))
    return samples


def test_pump_wear_is_found_with_held_setpoints_across_a_snapshot_restore() -> None:
    plant = PilotLine(get_scenario("pump-wear"), 1, 4)
    analyser = LineModelAnalyser("l1")
    last: dict[str, float] = {}
    causes: list[tuple[float, str, str]] = []
    outputs = 0
    for tick in range(2300):
        verdict = analyser.observe(reported_by_exception(plant, last))
        outputs += len(verdict.outputs)
        causes += [(tick * TICK_S, o.cause, o.signal) for o in verdict.occurrences]
        if tick == 1200:  # a restart after calibration: setpoints are never reported again
            blob = analyser.snapshot()
            analyser = LineModelAnalyser("l1")
            analyser.restore(blob)
    assert causes and causes[0][1:] == ("pump_wear", "pump_flow")
    assert causes[0][0] > 3600, "nothing before the scenario's onset"
    assert outputs > 0
    assert {p.name for p in analyser.parameters()}


def test_status_charts_parameters_spec_limits_and_a_rising_scrap_risk_under_pump_wear() -> None:
    plant = PilotLine(get_scenario("pump-wear"), 1, 4)
    analyser = LineModelAnalyser("l1")
    last: dict[str, float] = {}
    risks: list[float] = []
    for tick in range(1, 9001):
        analyser.observe(reported_by_exception(plant, last))
        if tick in (1500, 9000):  # one plant hour after calibration (before onset), and late in the wear
            status = {(o.machine, o.signal, o.kind): o.value for o in analyser.status(T0 + tick * 10**9)}
            risks.append(status[("coater1", "scrap_risk", "risk")])
    low = status[("coater1", "dry_loading", "spec_low")]
    high = status[("coater1", "dry_loading", "spec_high")]
    assert low < status[("coater1", "dry_loading", "target")] < high
    assert ("calender1", "compaction_resistance", "parameter") in status
    assert risks[0] < 0.01, "in control, the loading sits well inside its spec"
    assert risks[1] > 0.5, "five percent less pump flow pushes most coated product below the spec"
