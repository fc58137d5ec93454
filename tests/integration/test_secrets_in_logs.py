"""Secrets never reach a log: ``twin ingest`` and ``twin serve`` run as a user runs them, with every secret
set in the environment, DEBUG logging and dependencies that fail (a closed OPC UA port, wrong InfluxDB
credentials), and their whole output is searched for each secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.localservices import Influxd, Mosquitto, free_port

pytestmark = pytest.mark.integration

TWIN = str(Path(sys.executable).with_name("twin"))
SECRETS = {
    "LINETWIN_MQTT__PASSWORD": "mqtt-pw-7f3a9",
    "LINETWIN_INFLUX__PASSWORD": "influx-pw-c81d2",
    "LINETWIN_OPCUA__PASSWORD": "opcua-pw-55e0b",
    "LINETWIN_TWIN__API_TOKEN": "api-token-9b4e1",
}


def _run(args: list[str], env: dict[str, str], cwd: Path, seconds: float) -> str:
    process = subprocess.Popen(
        [TWIN, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def test_no_secret_appears_in_the_output_of_ingest_or_the_twin(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LINETWIN_")},
        **SECRETS,
        "LINETWIN_LOG_LEVEL": "DEBUG",
        "LINETWIN_MQTT__HOST": mosquitto.host,
        "LINETWIN_MQTT__PORT": str(mosquitto.port),
        "LINETWIN_MQTT__USERNAME": "ingest",
        "LINETWIN_INFLUX__URL": influxd.url,
        "LINETWIN_INFLUX__USERNAME": "writer",
        "LINETWIN_INFLUX__SPOOL_DIR": str(tmp_path / "spool"),
        "LINETWIN_OPCUA__ENDPOINTS": f'["opc.tcp://127.0.0.1:{free_port()}/nowhere"]',
        "LINETWIN_OPCUA__USERNAME": "operator",
        "LINETWIN_INGEST__METRICS_PORT": str(free_port()),
        "LINETWIN_TWIN__PORT": str(free_port()),
        "LINETWIN_TWIN__STATE_FILE": str(tmp_path / "twin.sqlite"),
    }
    output = _run(["ingest"], env, tmp_path, 6.0) + _run(["serve"], env, tmp_path, 6.0)
    assert "MQTT" in output or "OPC UA" in output, "the processes ran and logged"
    leaked = [name for name, secret in SECRETS.items() if secret in output]
    assert not leaked, f"{leaked} in the output:\n{output[-3000:]}"
