"""The LineModel adapter on simulated pump wear, fed by exception as OPC UA reports it."""

from __future__ import annotations

import json
import logging
from collections import deque

import pytest

from core.sample import Quality, Sample
from core.settings import ModelSettings, load_settings
from models.line import LineModel
from plant.line import PilotLine
from plant.scenarios import Scenario, get_scenario
from twin.modeladapter import QUIET_MEMORIES, LineModelAnalyser, analyser_factory

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


def _calibrated(analyser: LineModelAnalyser, ticks: int) -> LineModelAnalyser:
    plant = PilotLine(get_scenario("nominal"), 1, 4)
    last: dict[str, float] = {}
    for _ in range(ticks):
        analyser.observe(reported_by_exception(plant, last))
    return analyser


def test_the_models_settings_configure_each_lines_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINETWIN_MODELS__CALIBRATION_S", "600")
    monkeypatch.setenv("LINETWIN_MODELS__DETECTOR", "ewma")
    analyser = analyser_factory(load_settings())("l1")
    assert isinstance(analyser, LineModelAnalyser)
    assert analyser.model.calibration_s == 600 and analyser.model.detector_kind == "ewma"
    _calibrated(analyser, 400)  # 800 plant seconds: past the configured 600 s
    assert analyser.model.calibrated.get("coater1")


def test_a_snapshot_under_other_model_settings_calibrates_afresh(caplog: pytest.LogCaptureFixture) -> None:
    blob = _calibrated(LineModelAnalyser("l1", LineModel("l1", calibration_s=600)), 400).snapshot()
    same = LineModelAnalyser("l1", LineModel("l1", calibration_s=600))
    same.restore(blob)
    assert same.model.calibrated.get("coater1"), "same settings: the calibration is kept"
    other = LineModelAnalyser("l1", LineModel("l1", calibration_s=600, arl0=1e4))
    with caplog.at_level(logging.WARNING):
        other.restore(blob)
    assert not other.model.calibrated.get("coater1") and other.model.arl0 == 1e4
    assert "arl0 1000000.0 -> 10000.0" in caplog.text
    assert other.held == same.held, "held values are not calibration: they survive"


def test_a_snapshot_of_an_older_model_version_calibrates_afresh(caplog: pytest.LogCaptureFixture) -> None:
    blob = _calibrated(LineModelAnalyser("l1", LineModel("l1", calibration_s=600)), 400).snapshot()
    state = json.loads(blob)
    state["model"]["version"] = 1
    del state["model"]["steps"]
    analyser = LineModelAnalyser("l1", LineModel("l1", calibration_s=600))
    with caplog.at_level(logging.WARNING):
        analyser.restore(json.dumps(state).encode())
    assert not analyser.model.calibrated.get("coater1")
    assert "model version 1" in caplog.text


def test_the_models_settings_defaults_are_the_line_models_own() -> None:
    """``[models]`` and ``LineModel``'s constructor state the same defaults; neither may drift alone."""
    assert LineModel("l1").config() == {"line": "l1", **ModelSettings().model_dump()}


def test_spec_limits_come_from_the_line_description_where_it_has_them() -> None:
    analyser = analyser_factory(load_settings())("l1")
    assert isinstance(analyser, LineModelAnalyser)
    before = {(o.machine, o.signal, o.kind): o.value for o in analyser.status(T0)}
    assert (
        before[("coater1", "dry_loading", "spec_low")],
        before[("coater1", "dry_loading", "spec_high")],
    ) == (
        19.6,
        20.4,
    ), "described limits stand before any calibration"
    _calibrated(analyser, 1500)
    status = {(o.machine, o.signal, o.kind): o.value for o in analyser.status(T0)}
    assert (
        status[("calender1", "porosity", "spec_low")],
        status[("calender1", "porosity", "spec_high")],
    ) == (
        28.0,
        32.0,
    )
    low, high = (
        status[("calender1", "thickness", "spec_low")],
        status[("calender1", "thickness", "spec_high")],
    )
    assert low < status[("calender1", "thickness", "target")] < high, "undescribed: ± tolerance of the recipe"


def test_a_value_of_bad_quality_never_reaches_calibration_or_the_detectors() -> None:
    def calibrated(spike: Quality | None) -> LineModel:
        plant = PilotLine(get_scenario("nominal"), 1, 4)
        analyser = LineModelAnalyser("l1", LineModel("l1", calibration_s=1200))
        last: dict[str, float] = {}
        found = 0
        for tick in range(900):
            samples = reported_by_exception(plant, last)
            if spike is not None and tick % 50 == 7:  # a gauge fault reported as 999 mg/cm²
                stamp = samples[0].source_time_ns
                samples.append(Sample("l1", "coater1", "dry_loading", 999.0, "mg/cm2", stamp, stamp, spike))
            found += len(analyser.observe(samples).occurrences)
        assert found == 0 or spike is Quality.GOOD
        return analyser.model

    clean = calibrated(None)
    flagged = calibrated(Quality.BAD)
    assert flagged.calibrated["coater1"]
    gain = {m.steps["coater1"].parameters()[0].value for m in (clean, flagged)}
    assert max(gain) - min(gain) < 1e-3, "the calibration saw the good values only"
    assert flagged.steps["coater1"].scatter["dry_loading"] == pytest.approx(
        clean.steps["coater1"].scatter["dry_loading"], rel=0.05
    )
    trusted = calibrated(Quality.GOOD)  # the same spikes marked good: a measurement, and it shows
    assert trusted.steps["coater1"].ranges["dry_loading"][1] > 900


def _conditions(scenario: Scenario, hours: float) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """(plant hour, key) of every raise and every return to normal through the adapter; a condition
    raised again while it stands (to list a consequence) is the alarm already raised."""
    plant = PilotLine(scenario, 1, 4)
    analyser = LineModelAnalyser("l1")
    last: dict[str, float] = {}
    raised, cleared = [], []
    for tick in range(int(hours * 3600 / TICK_S)):
        verdict = analyser.observe(reported_by_exception(plant, last))
        hour = tick * TICK_S / 3600
        standing = {key for _, key in raised} - {key for _, key in cleared}
        raised += [(hour, o.key) for o in verdict.occurrences if o.key not in standing]
        cleared += [(hour, key) for key in verdict.cleared]
    return raised, cleared


def test_a_pump_that_keeps_wearing_stays_one_active_alarm() -> None:
    raised, cleared = _conditions(get_scenario("pump-wear"), 7.0)
    wear = [key for _, key in raised if key.endswith("/pump_wear")]
    assert len(wear) == 1, raised
    assert [c for c in cleared if c[1] == wear[0]] == [], "no return to normal while the pump is worn"


def test_a_condition_stays_active_while_its_machine_delivers_hours_behind_another() -> None:
    """The coater's connector runs 2.5 plant hours behind the calender's (an OPC UA backlog under load):
    the coater's quiet time runs on the coater's clock, not on the freshest sample of the line."""
    plant = PilotLine(get_scenario("pump-wear"), 1, 4)
    analyser = LineModelAnalyser("l1")
    last: dict[str, float] = {}
    behind: deque[list[Sample]] = deque()
    raised, cleared = [], []
    for _ in range(int(7 * 3600 / TICK_S)):
        samples = reported_by_exception(plant, last)
        behind.append([s for s in samples if s.machine == "coater1"])
        now = [s for s in samples if s.machine != "coater1"]
        if len(behind) > 2.5 * 3600 / TICK_S:
            now += behind.popleft()
        verdict = analyser.observe(now)
        raised += [o.key for o in verdict.occurrences if o.key.endswith("/pump_wear")]
        cleared += verdict.cleared
    assert raised, "the coater's wear is found, hours late"
    assert cleared == [], "no return to normal while the pump is worn"


def test_a_gap_in_a_machines_data_is_no_quiet_time() -> None:
    """The coater's values are lost for 2.5 plant hours while the pump wears (its connector down, the
    server's queue overflowed): nobody saw the flow come back, so the condition stands through the gap
    and after it, and the gap is not counted as watched time."""
    plant = PilotLine(get_scenario("pump-wear"), 1, 4)
    analyser = LineModelAnalyser("l1")
    last: dict[str, float] = {}
    raised: list[str] = []
    cleared: list[str] = []
    gap: tuple[float, float] | None = None
    for tick in range(int(7 * 3600 / TICK_S)):
        hour = tick * TICK_S / 3600
        samples = reported_by_exception(plant, last)
        if raised and gap is None:
            gap = (hour, hour + 2.5)
        if gap is not None and gap[0] <= hour < gap[1]:
            samples = [s for s in samples if s.machine != "coater1"]
        verdict = analyser.observe(samples)
        raised += [o.key for o in verdict.occurrences if o.key.endswith("/pump_wear")]
        cleared += verdict.cleared
    assert raised and gap is not None, "the wear is found before the gap"
    assert [key for key in cleared if key.endswith("/pump_wear")] == [], "no return to normal over a gap"
    watched = analyser.watched_ns["coater1"] / 3.6e12
    assert 7 - 2.5 - 0.1 < watched < 7 - 2.5 + 0.1, "the gap is not watched time"


def test_a_transient_returns_to_normal_once_its_detector_is_quiet() -> None:
    from plant.scenarios import Fault

    onset, hold = 1.5 * 3600, 900.0
    faults = tuple(
        Fault(
            f"dip-{name}", "coater1", "pump_efficiency", size, "fraction", at, 0.0, ("coater1.pump_flow",), ""
        )
        for name, size, at in (("down", -0.05, onset), ("up", 0.05, onset + hold))
    )
    raised, cleared = _conditions(Scenario("pump-dip", "the pump dips for 15 minutes", faults), 5.5)
    wear = [(hour, key) for hour, key in raised if key.endswith("/pump_wear")]
    assert len(wear) == 1 and 1.5 <= wear[0][0] < 1.6, raised
    back = [hour for hour, key in cleared if key == wear[0][1]]
    assert len(back) == 1 and back[0] > (onset + hold) / 3600 + QUIET_MEMORIES - 0.1, cleared


def test_a_ramp_stays_one_alarm_until_the_pump_is_replaced_then_returns_after_the_hold_time() -> None:
    """ISA-18.2: the wear's condition stands while the flow is off, whatever the ramp does, and returns to
    normal only once its statistic has been back in control for the hold time (QUIET_MEMORIES memories)."""
    from plant.scenarios import Fault

    onset, replaced = 1.5 * 3600, 4.0 * 3600
    faults = (
        Fault(
            "wear",
            "coater1",
            "pump_efficiency",
            -0.04,
            "fraction",
            onset,
            2 * 3600.0,
            ("coater1.pump_flow",),
            "",
        ),
        Fault(
            "new-pump",
            "coater1",
            "pump_efficiency",
            0.04,
            "fraction",
            replaced,
            0.0,
            ("coater1.pump_flow",),
            "",
        ),
    )
    raised, cleared = _conditions(Scenario("pump-replaced", "wear, then a new pump", faults), 7.0)
    wear = [(hour, key) for hour, key in raised if key.endswith("/pump_wear")]
    assert len(wear) == 1 and onset / 3600 < wear[0][0] < replaced / 3600, raised
    back = [hour for hour, key in cleared if key == wear[0][1]]
    hold = QUIET_MEMORIES * ModelSettings().memory_s / 3600
    assert len(back) == 1, cleared
    assert replaced / 3600 + hold - 0.1 < back[0] < replaced / 3600 + hold + 0.5, "after the hold time"
