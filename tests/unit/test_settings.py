"""The typed settings model: defaults, file, environment and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import linedesc
from core.errors import ConfigError
from core.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "linetwin.example.toml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # setenv first so that monkeypatch restores the variable's absence afterwards: load_settings sets
    # it for child processes, and a bad file left named there would break later tests in this worker
    monkeypatch.setenv("LINETWIN_CONFIG", "")
    monkeypatch.delenv("LINETWIN_CONFIG")
    monkeypatch.chdir(tmp_path)


def _leaf_keys(data: dict[str, object], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in data.items():
        if isinstance(value, dict):
            keys |= _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def _example_keys(text: str) -> set[str]:
    """Every option named in the example, set (``key = v``) or shown commented out (``# key = v``)."""
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        if header := re.match(r"^\[(\w+)\]", line):
            section = header.group(1) + "."
        elif option := re.match(r"^(?:# )?(\w+) = ", line):
            keys.add(section + option.group(1))
    return keys


def test_example_file_documents_every_option() -> None:
    expected = _leaf_keys(Settings().model_dump())
    missing = expected - _example_keys(EXAMPLE.read_text())
    assert not missing, f"options missing from linetwin.example.toml: {sorted(missing)}"


def test_example_file_states_the_defaults() -> None:
    assert load_settings(EXAMPLE) == Settings()


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[influx]\nurl = "http://file:8086"\nbatch_size = 10\n')
    monkeypatch.setenv("LINETWIN_INFLUX__URL", "http://env:8086")
    settings = load_settings(config)
    assert settings.influx.url == "http://env:8086"
    assert settings.influx.batch_size == 10


def test_unknown_key_is_an_error_naming_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[influx]\nbatchsize = 10\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*influx\.batchsize"):
        load_settings(config)


def test_wrong_type_is_an_error_naming_the_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[mqtt]\nport = "eighteen"\n')
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        load_settings(config)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[mqtt]\nport = \n")
    with pytest.raises(ConfigError, match=r"line 2"):
        load_settings(config)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_the_line_identity_is_the_descriptions_unless_the_settings_name_it() -> None:
    described = Settings(line_description=linedesc.builtin_path("two-coater"))
    assert (described.site, described.area, described.line) == ("lyon", "cells", "l7")
    assert described.namespace().alerts == "linetwin/alerts/lyon/cells/l7"
    second = Settings(line_description=linedesc.builtin_path("two-coater"), line="l8")
    assert (second.site, second.line) == ("lyon", "l8"), "a second line of the same build, its own name"
    assert (Settings().site, Settings().line) == ("site1", "line1"), "no description: the pilot line's"


def test_logs_can_be_json_lines_for_a_log_collector(capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import logging

    from core.logging import setup_logging

    setup_logging("INFO", "json")
    logging.getLogger("connectors.mqtt").warning("sequence gap", extra={"source": "ch01", "got": 7})
    event = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert event["level"] == "WARNING" and event["logger"] == "connectors.mqtt"
    assert (event["message"], event["source"], event["got"]) == ("sequence gap", "ch01", 7)
    setup_logging("INFO")
