"""The twin's InfluxDB points (``model``, ``alert``) and its read-only InfluxQL queries.

Line protocol escaping comes from influxdb-client's ``Point`` (a few points a second, so its cost does
not matter); the points are written by the one writer, ``core.influx.writer``, with its disk spool, so
an InfluxDB outage costs the dashboards a gap, not the data. Queries go to the v1 ``/query`` endpoint,
which InfluxDB 1.x serves and 2.x/3.x serve for compatibility.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from influxdb_client import Point, WritePrecision

from core.errors import LinetwinError
from core.records import ModelOutput
from core.sample import Sample
from core.settings import InfluxSettings
from twin.alerts import Alert


class InfluxUnavailable(LinetwinError):
    """InfluxDB did not answer or refused the query."""


def model_point(line: str, output: ModelOutput) -> str:
    point = (
        Point("model")
        .tag("line", line)
        .tag("machine", output.machine)
        .tag("signal", output.signal)
        .tag("kind", output.kind)
        .field("value", float(output.value))
        .time(output.time_ns, WritePrecision.NS)
    )
    if output.sigma is not None:
        point.field("sigma", float(output.sigma))
    return str(point.to_line_protocol())


def alert_point(alert: Alert, state: str, time_ns: int) -> str:
    """An annotation for Grafana: one point per state change of an alert."""
    point = (
        Point("alert")
        .tag("line", alert.line)
        .tag("machine", alert.machine)
        .tag("signal", alert.signal)
        .tag("state", state)
        .field("id", alert.id)
        .field("title", alert.title)
        .field("text", alert.text)
        .field("cause", alert.cause)
        .field("action", alert.action)
        .field("magnitude", float(alert.magnitude))
        .field("onset", alert.onset_ns)
        .time(time_ns, WritePrecision.NS)
    )
    return str(point.to_line_protocol())


def _auth(settings: InfluxSettings) -> tuple[dict[str, str], dict[str, str]]:
    headers: dict[str, str] = {}
    params: dict[str, str] = {"db": settings.database}
    if settings.token is not None:
        headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
    elif settings.username and settings.password is not None:
        params |= {"u": settings.username, "p": settings.password.get_secret_value()}
    return headers, params


async def query(settings: InfluxSettings, influxql: str, bind: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one read-only InfluxQL statement with bound parameters; returns its series."""
    headers, params = _auth(settings)
    params |= {"q": influxql, "params": json.dumps(bind), "epoch": "ns"}
    try:
        async with httpx.AsyncClient(timeout=settings.timeout_s) as client:
            response = await client.get(f"{settings.url}/query", params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise InfluxUnavailable(f"InfluxDB at {settings.url} is unreachable: {exc}") from None
    if response.status_code >= 400:
        raise InfluxUnavailable(f"InfluxDB refused the query: {response.text[:200]}")
    result = response.json().get("results", [{}])[0]
    if "error" in result:
        if str(result["error"]).startswith("database not found"):
            return []  # nothing has been written yet: an empty history, not a failure
        raise InfluxUnavailable(f"InfluxDB query failed: {result['error']}")
    return list(result.get("series", []))


async def last_values(settings: InfluxSettings, line: str) -> list[Sample]:
    """The last measured value of every machine signal of ``line`` (cycler channels left out)."""
    series = await query(
        settings,
        'SELECT last("value") FROM "process" WHERE "line" = $line AND "channel" = \'\''
        ' GROUP BY "machine", "signal", "unit"',
        {"line": line},
    )
    samples = []
    for serie in series:
        tags = serie["tags"]
        time_ns, value = serie["values"][0][:2]
        if value is not None:
            samples.append(
                Sample(line, tags["machine"], tags["signal"], float(value), tags["unit"], time_ns, time_ns)
            )
    return samples
