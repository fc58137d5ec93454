"""Each scenario moves the signals it documents, by the documented amount, within its documented time."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from plant.line import (
    CROSS_WEB_TOLERANCE,
    LOADING_TOLERANCE,
    POROSITY_TOLERANCE,
    TARGET_LOADING,
    TARGET_POROSITY,
)
from plant.recording import Recording, record
from plant.scenarios import SCENARIOS, WINDOW_S, Expectation, Fault

SEED = 7
PROCESS_FAULTS = [
    pytest.param(f, e, id=f"{f.name}:{e.signal}")
    for s in SCENARIOS.values()
    for f in s.faults
    for e in f.expected
    if not e.signal.startswith("cells.")
]


@cache
def _recording(scenario: str, duration_s: float) -> Recording:
    return record(scenario, SEED, duration_s)


def _plant_seconds(process: pd.DataFrame, start: pd.Timestamp) -> np.ndarray:
    return np.asarray((process.index - start).total_seconds())


def _change(process: pd.DataFrame, fault: Fault, e: Expectation) -> float:
    start = process.index[0] - pd.Timedelta(seconds=1)
    t = _plant_seconds(process, start)
    before = process.loc[(t > fault.onset_s - WINDOW_S) & (t <= fault.onset_s), e.signal].mean()
    after = process.loc[(t > fault.settled_s) & (t <= fault.settled_s + WINDOW_S), e.signal].mean()
    return (after - before) / before if e.relative else after - before


@pytest.mark.parametrize(("fault", "expectation"), PROCESS_FAULTS)
def test_fault_moves_its_signal_by_the_documented_amount(fault: Fault, expectation: Expectation) -> None:
    scenario = fault.name
    recording = _recording(scenario, fault.settled_s + WINDOW_S)
    change = _change(recording.process, fault, expectation)
    assert change == pytest.approx(expectation.change, abs=expectation.tolerance)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "nominal"])
def test_nothing_moves_before_onset(scenario: str) -> None:
    fault = SCENARIOS[scenario].faults[0]
    process = record(scenario, SEED, fault.onset_s).process
    reference = record("nominal", SEED, fault.onset_s).process
    pd.testing.assert_frame_equal(process, reference)


def _cells_after(recording: Recording, onset_s: float) -> pd.DataFrame:
    cells = recording.cells
    started = (cells["formation_start"] - recording.process.index[0]).dt.total_seconds() + 1
    return cells[started >= onset_s]


def test_channel_offset_shifts_that_channels_capacities() -> None:
    fault = SCENARIOS["cycler-channel-offset"].faults[0]
    (expectation,) = fault.expected
    recording = _recording("cycler-channel-offset", fault.onset_s + 2 * 3600)
    cells = _cells_after(recording, fault.onset_s)
    on_channel = cells[cells["channel"] == fault.channel]
    others = cells[cells["channel"] != fault.channel]
    assert len(on_channel) >= 4
    shift = on_channel["discharge_capacity"].mean() / others["discharge_capacity"].mean() - 1
    assert shift == pytest.approx(expectation.change, abs=expectation.tolerance)


def test_micro_shorts_grow_a_k_value_tail_after_onset() -> None:
    fault = SCENARIOS["micro-short"].faults[0]
    (expectation,) = fault.expected
    recording = _recording("micro-short", fault.onset_s + 2 * 3600)
    cells = recording.cells.dropna(subset=["k_value"])
    k = cells["k_value"]
    threshold = k.median() + 5 * (k - k.median()).abs().median()
    after = _cells_after(recording, fault.onset_s).dropna(subset=["k_value"])
    before = cells[~cells["cell_id"].isin(after["cell_id"])]
    assert (before["k_value"] > threshold).mean() < 0.02
    share = (after["k_value"] > threshold).mean()
    assert share == pytest.approx(expectation.change, abs=expectation.tolerance)


@pytest.mark.parametrize("seed", [SEED, 6])
def test_nominal_stays_in_spec_for_an_8_hour_shift(seed: int) -> None:
    recording = record("nominal", seed, 8 * 3600.0)
    p = recording.process
    lo, hi = TARGET_LOADING * (1 - LOADING_TOLERANCE), TARGET_LOADING * (1 + LOADING_TOLERANCE)
    assert p["coater1.dry_loading"].dropna().between(lo, hi).all()  # NaN: the gauge standardises
    assert p["coater1.dry_loading"].isna().sum() == (~p["coater1.gauge_ok"]).sum()
    assert p["calender1.incoming_loading"].between(lo, hi).all()
    # the cross-web profile is judged per one-minute gauge scan: each lane within the loading spec,
    # and within +-1.5 % of the scan's cross-web mean
    scans = p[[f"coater1.profile_lane{k}" for k in range(1, 6)]].resample("60s").mean()
    scans = scans.dropna()
    assert ((scans >= lo) & (scans <= hi)).all().all()
    cross_web = scans.div(scans.mean(axis=1), axis=0) - 1
    assert cross_web.abs().max().max() < CROSS_WEB_TOLERANCE
    eps = 100 * TARGET_POROSITY
    assert (
        p["calender1.porosity"].between(eps - 100 * POROSITY_TOLERANCE, eps + 100 * POROSITY_TOLERANCE).all()
    )
    assert p["coater1.residual_solvent"].max() < 0.2
    assert recording.ground_truth == []
    cells = recording.cells
    assert len(cells) > 300
    assert cells["first_cycle_efficiency"].between(85, 92).all()
    assert (cells["k_value"].dropna() < 2.0).all()


def test_ground_truth_names_the_onset_in_plant_time() -> None:
    fault = SCENARIOS["pump-wear"].faults[0]
    recording = record("pump-wear", SEED, fault.onset_s + 60)
    (truth,) = recording.ground_truth
    start = recording.process.index[0] - pd.Timedelta(seconds=1)
    assert pd.Timestamp(truth["onset"]) == start + pd.Timedelta(seconds=fault.onset_s)
    assert truth["scenario"] == "pump-wear"
    assert truth["magnitude"] == fault.magnitude
    signals = truth["signals"]
    assert isinstance(signals, list)
    assert "coater1.dry_loading" in signals
