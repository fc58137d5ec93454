"""The streaming line model: sample-by-sample input, snapshot/restore, outputs, and the what-if on top."""

from __future__ import annotations

import json
from functools import cache

import pandas as pd
import pytest

from core.sample import Sample
from models.line import LineModel
from models.replay import events, feed, replay
from models.steps.formation import FormationStep
from models.whatif import WhatIf, WhatIfError
from plant.recording import Recording, record
from plant.scenarios import get_scenario


@cache
def _recording() -> Recording:
    return record("load-cell-bias", 2, 2.5 * 3600)


def _model() -> LineModel:
    return LineModel(calibration_s=1800, calibration_cells=24)


def test_snapshot_restore_resumes_exactly_where_it_stopped() -> None:
    rec = _recording()
    half = rec.process.index[len(rec.process) // 2]
    first, second = rec.process.loc[:half], rec.process.loc[half:].iloc[1:]
    straight = _model()
    expected = replay(straight, rec.process)
    resumed = _model()
    found = replay(resumed, first)
    resumed = LineModel.restore(json.loads(json.dumps(resumed.snapshot())))
    found += replay(resumed, second)
    assert [(f.key, f.onset_ns) for f in found] == [(f.key, f.onset_ns) for f in expected]
    after = resumed.statistics()
    for key, pair in straight.statistics().items():
        assert after[key] == pytest.approx(pair, rel=1e-9)
    assert any(f.cause == "load_cell_bias" for f in found)


def test_a_restored_k_value_cusum_continues_identically() -> None:
    cells = record("micro-short", 1, 3 * 3600).cells.dropna(subset=["k_value"])
    cells = cells.assign(t=pd.to_datetime(cells["aging_end"], utc=True)).sort_values("t")
    rows = [(r.t.value, r.cell_id, r.channel, r.k_value) for r in cells.itertuples()]
    straight = LineModel()
    expected = [f for row in rows for f in straight.add_k_value(*row)]
    resumed = LineModel()
    found = []
    for i, row in enumerate(rows):
        found += resumed.add_k_value(*row)
        if i == len(rows) // 2:
            assert resumed.statistics()["cycler1.k_value"][0] > 0  # mid-excursion: cells and onset carried
            resumed = LineModel.restore(json.loads(json.dumps(resumed.snapshot())))
    assert [(f.key, f.onset_ns, f.cells, f.statistic) for f in found] == [
        (f.key, f.onset_ns, f.cells, f.statistic) for f in expected
    ]
    assert any(f.cause == "micro_short" for f in found)
    assert resumed.statistics()["cycler1.k_value"] == straight.statistics()["cycler1.k_value"]


def test_samples_give_the_same_findings_as_ticks() -> None:
    rec = _recording()
    process = rec.process.iloc[: int(1.6 * 3600)]
    by_tick = _model()
    expected = replay(by_tick, process)
    by_sample = _model()
    found = []
    for time_ns, _, values in events(process):
        samples = [
            Sample(
                "line1",
                column.split(".")[0],
                column.split(".")[1],
                float(value),
                "",
                time_ns,
                time_ns,
                roll_id=values.get(f"{column.split('.')[0]}.roll_id"),
            )
            for column, value in values.items()
            if isinstance(value, float)
        ]
        found += by_sample.observe(samples)
    assert by_sample.calibrated == by_tick.calibrated
    assert [f.key for f in found] == [f.key for f in expected]
    assert by_sample.parameters() == by_tick.parameters()


def test_outputs_carry_predictions_residuals_and_detector_statistics() -> None:
    model = _model()
    replay(model, _recording().process.iloc[:2000])
    kinds = {(o.machine, o.signal, o.kind) for o in model.outputs}
    assert ("coater1", "dry_loading", "predicted") in kinds
    assert ("calender1", "thickness_residual", "residual") in kinds
    assert ("calender1", "thickness_residual", "threshold") in kinds
    predicted = next(o for o in model.outputs if o.signal == "dry_loading" and o.kind == "predicted")
    assert predicted.value == pytest.approx(20.0, rel=0.02)
    assert predicted.sigma is not None and predicted.sigma > 0


def test_whatif_predicts_more_loading_for_more_flow_and_inverts_to_a_target() -> None:
    model = _model()
    with pytest.raises(WhatIfError):
        WhatIf(model)
    rec = _recording()
    replay(model, rec.process.iloc[:2000], rec.cells[rec.cells.formation_end < rec.process.index[1999]])
    whatif = WhatIf(model)
    base = {p.quantity: p for p in whatif.predict({}).predictions}
    more = {p.quantity: p for p in whatif.predict({"pump_flow": 1.05 * whatif.base["pump_flow"]}).predictions}
    assert more["dry_loading"].value == pytest.approx(1.05 * base["dry_loading"].value, rel=0.002)
    assert more["thickness"].value > base["thickness"].value
    assert base["dry_loading"].lower_spec < base["dry_loading"].value < base["dry_loading"].upper_spec
    target = {"dry_loading": 20.6, "porosity": 29.0}
    setpoints = whatif.inverse(target, {"pump_flow": (60, 100), "line_load": (500, 1200)})
    predicted = whatif.predict(setpoints).values()
    assert predicted["dry_loading"] == pytest.approx(20.6, rel=0.002)
    assert predicted["porosity"] == pytest.approx(29.0, abs=0.1)
    assert 60 <= setpoints["pump_flow"] <= 100
    with pytest.raises(WhatIfError):
        whatif.predict({"nozzle": 1.0})


def test_events_interleave_cells_in_time_order() -> None:
    rec = _recording()
    times = [t for t, _, _ in events(rec.process.iloc[:3000], rec.cells)]
    assert times == sorted(times)
    assert pd.Timestamp(times[0], tz="UTC") == rec.process.index[0]


def test_a_small_channel_drift_is_caught_against_the_channels_own_reference_across_a_restore() -> None:
    """0.75 % on ch05, about 2.6 within-channel σ: below the 4σ common-mode CUSUM's design, within the
    own-reference CUSUM's, once each channel's first cells have fixed its static offset."""
    scenario = get_scenario("cycler-channel-offset").scaled(0.25).delayed(4 * 3600)
    rec = record(scenario, 1, 8 * 3600)
    onset_ns = rec.process.index[0].value + int(4 * 3600e9)
    stream = list(events(rec.process, rec.cells))
    straight = LineModel()
    expected = feed(straight, stream)
    half = next(i for i, event in enumerate(stream) if event[0] > onset_ns + 3600e9)
    resumed = LineModel()
    found = feed(resumed, stream[:half])
    cells = resumed.steps["cycler1"]
    assert isinstance(cells, FormationStep)
    assert not cells.channel_reference, "every channel armed before the drift shows"
    resumed = LineModel.restore(json.loads(json.dumps(resumed.snapshot())))
    found += feed(resumed, stream[half:])
    channel = [f for f in expected if f.cause == "cycler_channel_offset"]
    assert [(f.channel, f.time_ns > onset_ns) for f in channel] == [("ch05", True)]
    # %: whichever CUSUM is first; the common-mode one counts ch05's static offset in
    assert 0.4 < channel[0].magnitude < 1.6
    assert [(f.key, f.time_ns) for f in found] == [(f.key, f.time_ns) for f in expected]
