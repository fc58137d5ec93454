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
    defaults = Settings()  # first: loading a file names it in LINETWIN_CONFIG, which Settings() then reads
    assert load_settings(EXAMPLE) == defaults


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


def test_opcua_is_signed_and_encrypted_by_default_on_both_ends() -> None:
    settings = Settings()
    opcua = settings.opcua
    assert (opcua.security_policy, opcua.security_mode) == ("Basic256Sha256", "SignAndEncrypt")
    assert settings.opcua.certificate is None, "the client's identity is made in pki_dir/own on first start"
    assert settings.plant.opcua_security_modes == ["SignAndEncrypt"], "the simulator offers None only if told"
    assert not settings.allow_readable_secrets


SECRETS = [
    ("mqtt", "password", "LINETWIN_MQTT__PASSWORD"),
    ("influx", "password", "LINETWIN_INFLUX__PASSWORD"),
    ("influx", "token", "LINETWIN_INFLUX__TOKEN"),
    ("twin", "api_token", "LINETWIN_TWIN__API_TOKEN"),
    ("opcua", "password", "LINETWIN_OPCUA__PASSWORD"),
]


@pytest.mark.parametrize(("section", "key", "variable"), SECRETS)
def test_a_settings_file_holding_a_secret_that_others_can_read_is_refused_with_the_fix(
    tmp_path: Path, section: str, key: str, variable: str
) -> None:
    config = tmp_path / "linetwin.toml"
    config.write_text(f'[{section}]\n{key} = "s3cret-in-file"\n')
    config.chmod(0o644)
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    message = str(refused.value)
    assert str(config) in message and f"{section}.{key}" in message and "mode 0644" in message
    assert f"chmod 600 {config}" in message and "allow_readable_secrets" in message
    assert "s3cret-in-file" not in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660])
def test_any_access_by_group_or_others_counts(tmp_path: Path, mode: int) -> None:
    config = tmp_path / "linetwin.toml"
    config.write_text('[mqtt]\npassword = "pw"\n')
    config.chmod(mode)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_settings(config)


def test_a_settings_file_readable_by_its_owner_only_gives_its_secrets(tmp_path: Path) -> None:
    config = tmp_path / "linetwin.toml"
    config.write_text('[mqtt]\npassword = "pw"\n[influx]\ntoken = "tk"\n')
    config.chmod(0o600)
    settings = load_settings(config)
    assert settings.mqtt.password is not None and settings.mqtt.password.get_secret_value() == "pw"


def test_a_readable_settings_file_without_secrets_loads(tmp_path: Path) -> None:
    config = tmp_path / "linetwin.toml"
    config.write_text('[mqtt]\nusername = "ingest"\n# password = "commented out"\n')
    config.chmod(0o644)
    assert load_settings(config).mqtt.username == "ingest"


def test_allow_readable_secrets_accepts_a_readable_file_when_set_explicitly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "linetwin.toml"
    config.write_text('[mqtt]\npassword = "pw"\n')
    config.chmod(0o644)
    monkeypatch.setenv("LINETWIN_ALLOW_READABLE_SECRETS", "true")
    assert load_settings(config).mqtt.password is not None


def test_secrets_from_the_environment_need_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for _, _, variable in SECRETS:
        monkeypatch.setenv(variable, "from-env")
    settings = load_settings()
    assert settings.twin.api_token is not None and settings.twin.api_token.get_secret_value() == "from-env"
