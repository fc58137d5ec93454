"""``twin backtest`` on any plant's history: wide or long tables, training period, scoring, output files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.backtest import read_table
from cli.main import app
from models import backtest

START = pd.Timestamp("2026-03-02T06:00Z")


def _history(rows: int = 6000, shift_at: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    index = pd.date_range(START, periods=rows, freq="s")
    frame = pd.DataFrame(
        {
            "press.oil_temperature": rng.normal(45.0, 0.5, rows),
            "press.force": rng.normal(1200.0, 10.0, rows),
            "oven.humidity": rng.normal(3.0, 0.2, rows),
            "batch": ["B1"] * rows,
        },
        index=index,
    )
    frame.iloc[shift_at:, 1] += 10.0  # force reads 1σ high from shift_at on
    return frame


def _truth(path: Path, onset: pd.Timestamp) -> Path:
    path.write_text(
        json.dumps({"fault": "force-drift", "machine": "press", "onset": onset.isoformat()}) + "\n"
    )
    return path


def test_generic_columns_get_detectors_and_the_shift_is_found_near_its_onset() -> None:
    frame = _history()
    detections = backtest.run(frame.iloc[2000:], frame.iloc[:2000], arl0=1e5)
    force = [d for d in detections if d.signal == "force"]
    assert force and force[0].time >= frame.index[4000]
    assert abs((force[0].onset - frame.index[4000]).total_seconds()) < 60
    assert 5 < force[0].magnitude < 15
    result = backtest.score(
        detections,
        [{"fault": "f", "machine": "press", "onset": frame.index[4000]}],
        frame.index[2000],
        frame.index[-1],
    )
    assert result.missed == [] and result.delays_s["f"] < 180, "a 1 σ shift within three one-minute blocks"


def test_cli_wide_csv_with_ground_truth_scores_and_writes_json(tmp_path: Path) -> None:
    frame = _history()
    csv = tmp_path / "press.csv"
    frame.rename_axis("time").to_csv(csv)
    out = tmp_path / "detections.json"
    truth = _truth(tmp_path / "truth.jsonl", frame.index[4000])
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            str(csv),
            "--train-rows",
            "2000",
            "--ground-truth",
            str(truth),
            "--out",
            str(out),
            "--arl0",
            "1e5",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "force-drift" in result.output and "per 8 h shift" in result.output
    rows = json.loads(out.read_text())
    assert any(r["signal"] == "force" for r in rows)


def test_cli_long_format_parquet_and_separate_training_file(tmp_path: Path) -> None:
    frame = _history(rows=3000, shift_at=1000)
    long = (
        frame.drop(columns="batch").rename_axis("time").reset_index().melt(id_vars="time", var_name="signal")
    )
    long.to_parquet(tmp_path / "history.parquet")
    _history(rows=1500, shift_at=1500).drop(columns="batch").rename_axis("time").to_csv(
        tmp_path / "train.csv"
    )
    out = tmp_path / "d.csv"
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            str(tmp_path / "history.parquet"),
            "--train",
            str(tmp_path / "train.csv"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "press.force" in set(pd.read_csv(out).pipe(lambda d: d.machine + "." + d.signal))


def test_cli_reports_a_missing_file_as_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["backtest", str(tmp_path / "none.csv")])
    assert result.exit_code == 2
    assert "no such file" in " ".join(result.output.split()), "the message, however the console wraps it"
    assert "Traceback" not in result.output


def test_wide_parquet_keeps_its_time_index(tmp_path: Path) -> None:
    frame = _history(rows=100)
    frame.to_parquet(tmp_path / "h.parquet")
    table = read_table(tmp_path / "h.parquet")
    assert table.index[0] == START
    assert "press.force" in table.columns


def test_per_sample_scores_count_rows_in_alarm_before_and_after_the_onset(tmp_path: Path) -> None:
    frame = _history()
    csv = tmp_path / "press.csv"
    frame.rename_axis("time").to_csv(csv)
    truth = _truth(tmp_path / "truth.jsonl", frame.index[4000])
    states = tmp_path / "states.csv"
    result = CliRunner().invoke(
        app,
        [
            *("backtest", str(csv), "--train-rows", "2000", "--ground-truth", str(truth)),
            *("--arl0", "1e5", "--per-sample", str(states), "--hold-s", "600"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "false-alarm rate" in result.output and "detection rate" in result.output
    rows = pd.read_csv(states, parse_dates=["time"])
    assert len(rows) == 4000 and set(rows["in_alarm"]) <= {0, 1}
    before, after = rows["in_alarm"][:2000], rows["in_alarm"][2000:]
    assert before.mean() < 0.01 and after.mean() > 0.9, "in alarm from the detection on, held by re-alarms"


def test_a_condition_detected_again_within_the_hold_is_one_episode() -> None:
    def at(minute: float, signal: str = "force") -> backtest.Detection:
        when = START + pd.Timedelta(minutes=minute)
        return backtest.Detection(when, "press", signal, "cusum", when, 1.0)

    found = [at(0), at(30), at(50), at(200), at(10, "oil_temperature")]
    spans = backtest.episodes(found, hold_s=3600)
    assert [(e[0].signal, e[0].time) for e in spans] == [
        ("force", START),
        ("oil_temperature", START + pd.Timedelta(minutes=10)),
        ("force", START + pd.Timedelta(minutes=200)),
    ]
    assert spans[0][1] == START + pd.Timedelta(minutes=110), "held an hour after its last detection"
    index = pd.date_range(START, periods=300, freq="min")
    score = backtest.per_sample(found, [], index, hold_s=3600)
    assert score.false_episodes_per_shift == pytest.approx(3 / (299 / 480))
