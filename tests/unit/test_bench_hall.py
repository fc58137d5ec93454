"""``twin bench hall``: the slow-context gates and the re-baseline run, on a few trainings."""

from __future__ import annotations

from typer.testing import CliRunner

from bench.hall import gates, rebases
from cli.main import app


def test_the_glsar_gate_keeps_the_halls_effect_through_the_simulators_sensor_faults() -> None:
    rows = {row.case: row for row in gates(10)}
    assert rows["hall effect 0.5 K/K"].glsar == 1.0
    assert rows["unrelated 60-min wander of 1 K"].glsar <= 0.1


def test_a_rebase_run_counts_every_window_once_per_chart() -> None:
    row = rebases(1800.0, 2, per_training=3)
    assert row.windows == 3 * row.trainings
    assert 0 <= row.alarmed_allowed <= row.windows and 0 <= row.alarmed_kept <= row.windows


def test_the_command_prints_both_tables() -> None:
    result = CliRunner().invoke(app, ["bench", "hall", "--trainings", "10", "--rebase-trainings", "1"])
    assert result.exit_code == 0, result.output
    assert "GLSAR" in result.output and "median's error allowed" in result.output
