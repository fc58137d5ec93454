"""docker-compose.yml, the Dockerfile and Grafana provisioning are valid and use the one settings model.

No Docker engine runs here, so the compose file is checked the way `docker compose config` would:
variables interpolated from .env.example, YAML merge keys resolved, then validated by compose-spec
(bindings of the Rust compose_spec parser, which implements the Compose Specification).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_spec import PyCompose

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
LINETWIN_SERVICES = ("sim", "ingest", "twin")


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _interpolate(text: str, env: dict[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if operator == ":-":
            return argument
        raise AssertionError(f"${{{name}}} is required by docker-compose.yml but not in .env.example")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", substitute, text)


def _resolved_compose(text: str) -> dict[str, Any]:
    data = yaml.safe_load(_interpolate(text, _env_example()))
    return {key: value for key, value in data.items() if not key.startswith("x-")}


def _validate(data: dict[str, Any]) -> PyCompose:
    compose = PyCompose.from_yaml(yaml.safe_dump(data))
    compose.validate()
    return compose


def test_compose_file_is_valid_compose_spec() -> None:
    compose = _validate(_resolved_compose((ROOT / "docker-compose.yml").read_text()))
    assert set(compose.service_names()) == {"influxdb", "mosquitto", "grafana", *LINETWIN_SERVICES}


def test_the_validator_refuses_a_broken_compose_file() -> None:
    data = _resolved_compose((ROOT / "docker-compose.yml").read_text())
    data["services"]["twin"]["restart"] = {"policy": "sometimes"}
    with pytest.raises(ValueError):
        _validate(data)


def test_every_service_has_a_healthcheck_and_a_restart_policy() -> None:
    services = _resolved_compose((ROOT / "docker-compose.yml").read_text())["services"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        assert service.get("restart") == "unless-stopped", name


def test_linetwin_services_configure_the_settings_model_only(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _resolved_compose((ROOT / "docker-compose.yml").read_text())["services"]
    for name in LINETWIN_SERVICES:
        environment = services[name]["environment"]
        assert all(key.startswith("LINETWIN_") for key in environment), name
        for key, value in environment.items():
            monkeypatch.setenv(key, str(value))
        settings = Settings()
        assert settings.mqtt.host == "mosquitto"
        assert settings.influx.url == "http://influxdb:8086"
        assert settings.influx.token is not None
        assert settings.opcua.endpoints == ["opc.tcp://sim:4840/linetwin"]


def test_linetwin_services_run_twin_subcommands() -> None:
    from typer.main import get_command

    from cli.main import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    services = _resolved_compose((ROOT / "docker-compose.yml").read_text())["services"]
    for name in LINETWIN_SERVICES:
        assert services[name]["command"][0] in commands, name


def test_named_volumes_keep_every_stateful_service_data() -> None:
    compose = _resolved_compose((ROOT / "docker-compose.yml").read_text())
    declared = set(compose["volumes"])
    for name in ("influxdb", "mosquitto", "grafana", *LINETWIN_SERVICES):
        mounts = [v.split(":")[0] for v in compose["services"][name]["volumes"]]
        assert declared & set(mounts), f"{name} keeps no named volume"


def test_dockerfile_is_multi_stage_non_root_and_ships_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("\nFROM ") + dockerfile.startswith("FROM ") >= 2
    user_lines = [line for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert user_lines and user_lines[-1] != "USER root"
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"include = \[(.*?)\]", pyproject)
    assert packages
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert f"COPY {package} {package}" in dockerfile, package


def test_grafana_provisioning_files_parse_and_point_at_influxdb() -> None:
    datasources = yaml.safe_load((ROOT / "dashboards/provisioning/datasources/influxdb.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["httpMode"] == "POST"
    assert source["secureJsonData"]["httpHeaderValue1"].startswith("Token ")
    providers = yaml.safe_load((ROOT / "dashboards/provisioning/dashboards/linetwin.yaml").read_text())
    (provider,) = providers["providers"]
    compose = _resolved_compose((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.endswith(f":{provider['options']['path']}:ro") for m in mounts)
