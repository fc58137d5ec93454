"""Shared helpers of the ingest integration tests: settings for a test, waiting, reading InfluxDB."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.localservices import Influxd, Mosquitto
from core.settings import Settings


def ingest_settings(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, **sections: dict[str, Any]
) -> Settings:
    """Settings pointing at the test's services, a fresh database and spool, no metrics port; OPC UA
    without security on both ends, set explicitly (test_ingest_opcua_security.py tests the secure path)."""
    database = f"t_{uuid.uuid4().hex[:10]}"
    influxd.create_database(database)
    data: dict[str, Any] = {
        "mqtt": {
            "host": mosquitto.host,
            "port": mosquitto.port,
            "client_id_prefix": f"t{uuid.uuid4().hex[:6]}",
        },
        "influx": {
            "url": influxd.url,
            "database": database,
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_ms": 100,
            "retry_max_s": 0.5,
            "timeout_s": 2.0,
        },
        "opcua": {
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "publishing_interval_ms": 50,
            "security_policy": "None",
            "security_mode": "None",
        },
        "plant": {"opcua_security_modes": ["None"]},
        "ingest": {"metrics_port": None, "accounting_interval_s": 0.5, "opcua_enabled": False},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return Settings.model_validate(data)


async def wait_for(condition: Callable[[], bool], within_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def points(influxd: Influxd, database: str, where: str = "") -> list[dict[str, Any]]:
    """Every ``process`` point as a dict of its columns (tags included)."""
    query = f"SELECT * FROM process {where}"
    rows: list[dict[str, Any]] = []
    for series in influxd.query(query, database):
        columns = series["columns"]
        values: list[list[Any]] = series.get("values", [])  # type: ignore[assignment]
        rows += [dict(zip(columns, row, strict=True)) for row in values]  # type: ignore[call-overload]
    return rows


def count(influxd: Influxd, database: str) -> int:
    series = influxd.query("SELECT count(value) FROM process", database)
    return int(series[0]["values"][0][1]) if series else 0  # type: ignore[index]
