"""The tag map: valid files load, invalid ones name file, line and field; the built-in map fits the plant."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.tagmap import builtin, is_node_id, load
from core import linedesc
from core.errors import ConfigError
from core.settings import Settings

VALID = """
[[opcua]]
machine = "coater1"
scan_counter = "ns=2;s=coater1.scan_counter"

[[opcua.tags]]
node = "ns=2;s=coater1.pump_flow"
signal = "pump_flow"
unit = "mL/min"

[[mqtt]]
topic = "site1/formation/line1/cycler1/+/data"
machine = "cycler1"
channel_level = 4
units = { voltage = "V" }
"""


def test_a_valid_tag_map_loads(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(VALID)
    tag_map = load(path)
    assert tag_map.opcua[0].tags[0].signal == "pump_flow"
    assert tag_map.mqtt[0].units == {"voltage": "V"}


def test_an_invalid_field_is_named_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(VALID.replace('signal = "pump_flow"', 'signal = "Pump Flow"'))
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert f"{path}, line 8, field opcua.0.tags.0.signal" in message


def test_an_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(VALID.replace("channel_level = 4", "channel_levle = 4"))
    with pytest.raises(ConfigError, match=r"line 14, field mqtt.0.channel_levle"):
        load(path)


def test_toml_syntax_errors_carry_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text('[[mqtt]]\ntopic = "a/#\n')
    with pytest.raises(ConfigError, match=r"tags.toml: .*line 2"):
        load(path)


def test_a_wildcard_must_fill_a_topic_level(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text('[[mqtt]]\ntopic = "a/b#"\nmachine = "m"\n')
    with pytest.raises(ConfigError, match="wildcards must fill a whole topic level"):
        load(path)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [("(?P<channel>Ch\\d+", "not a regular expression"), ("(?P<lane>\\w+)", "named groups may be")],
)
def test_a_metric_pattern_must_be_a_regex_naming_only_signal_and_channel(
    tmp_path: Path, pattern: str, problem: str
) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(f'[[mqtt]]\ntopic = "spBv1.0/g/#"\nmachine = "m"\nmetric_pattern = \'{pattern}\'\n')
    with pytest.raises(ConfigError, match=rf"line 4, field mqtt.0.metric_pattern: .*{problem}"):
        load(path)


def test_node_ids_and_browse_paths_are_told_apart() -> None:
    assert is_node_id("ns=2;s=coater1.pump_flow")
    assert is_node_id("i=2258")
    assert not is_node_id("PilotLine/Coater1/PumpFlow")


def test_builtin_map_reads_each_formation_step_under_the_lines_namespace() -> None:
    json_source, sparkplug_source = builtin(Settings()).mqtt
    assert json_source.topic == "site1/electrodes/line1/cycler1/+/+"
    assert json_source.channel_level == 4
    assert {"voltage", "current", "temperature", "capacity", "ocv", "k_value"} <= set(json_source.units)
    assert (sparkplug_source.format, sparkplug_source.topic) == (
        "sparkplug",
        "spBv1.0/site1.electrodes.line1/+/cycler1/#",
    )
    vendor = builtin(Settings(line_description=linedesc.builtin_path("two-coater"))).mqtt[0]
    assert (vendor.topic, vendor.machine) == ("lyon/cells/l7/cell_formation/+/+", "cell_formation")
    assert vendor.units["discharge_capacity"] == "mA.h" and "sheet_position" in vendor.units


def test_a_source_unit_that_cannot_become_the_stored_unit_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(
        '[[opcua]]\nmachine = "coater9"\n\n[[opcua.tags]]\nnode = "ns=2;s=CoatWeight"\n'
        'signal = "coat_weight"\nunit = "mg/cm2"\nsource_unit = "cm3/s"\n'
    )
    with pytest.raises(
        ConfigError, match=r"tags.toml, line 4, field opcua.0.tags.0: .*cannot convert 'cm3/s'"
    ):
        load(path)


def test_source_units_convert_listed_signals_only(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(
        '[[mqtt]]\ntopic = "a/+"\nmachine = "m"\nunits = { v = "V" }\nsource_units = { w = "mV" }\n'
    )
    with pytest.raises(ConfigError, match="source_units names 'w', which units does not list"):
        load(path)
    path.write_text(
        '[[mqtt]]\ntopic = "a/+"\nmachine = "m"\nunits = { v = "V" }\nsource_units = { v = "mV" }\n'
    )
    (source,) = load(path).mqtt
    assert source.conversions()["v"](1500.0) == pytest.approx(1.5)
