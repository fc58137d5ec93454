"""The fault-signature matrix: which residuals move decides the cause, including faults the plant lacks."""

from __future__ import annotations

import pytest

from models.rootcause import CAUSES, Finding, classify_calender, classify_coater


@pytest.mark.parametrize(
    ("feature", "moving", "cause", "signal"),
    [
        ("pump_flow_deviation", {"dry_loading"}, "pump_wear", "pump_flow"),
        ("dry_loading", {"pump_flow_deviation"}, "pump_wear", "pump_flow"),
        ("dry_loading_residual", {"slurry_density", "dry_loading"}, "solids_drift", "slurry_density"),
        ("dry_loading_residual", set(), "gauge_bias", "dry_loading"),
        ("residual_solvent", {"dryer_zone3_deviation"}, "dryer_zone_fault", "dryer_zone3_temperature"),
        ("dry_loading_residual", {"dryer_zone2_deviation"}, "dryer_zone_fault", "dryer_zone2_temperature"),
        ("residual_solvent", set(), "drying_fault", "residual_solvent"),
        ("web_speed_deviation", set(), "speed_control", "web_speed"),
    ],
)
def test_coater_signatures(feature: str, moving: set[str], cause: str, signal: str) -> None:
    verdict = classify_coater(moving | {feature}, feature)
    assert verdict is not None and verdict[:2] == (cause, signal)


@pytest.mark.parametrize(
    ("feature", "moving", "cause"),
    [
        ("thickness_residual", {"roll_temperature_deviation"}, "roll_heating"),
        ("thickness_residual", {"porosity_residual"}, "load_cell_bias"),
        ("porosity_residual", {"incoming_loading"}, "upstream_loading"),
        ("line_load_deviation", set(), "line_load_control"),
    ],
)
def test_calender_signatures(feature: str, moving: set[str], cause: str) -> None:
    assert classify_calender(moving | {feature}, feature)[0] == cause


def test_every_cause_has_a_title_and_an_action_and_a_finding_reads_as_a_sentence() -> None:
    assert all(c.title and c.action for c in CAUSES.values())
    finding = Finding(
        "line1",
        "cycler1",
        "discharge_capacity",
        0,
        2.5,
        "%",
        "cycler_channel_offset",
        0.85,
        "cusum",
        channel="ch05",
    )
    assert finding.key == "line1/cycler1/discharge_capacity/cycler_channel_offset"
    assert finding.text.startswith("discharge_capacity on ch05 moved +2.5 %")
    assert "Recalibrate" in finding.action
