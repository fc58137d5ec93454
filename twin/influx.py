"""Write the twin's points (``model``, ``alert``) to InfluxDB and proxy read-only InfluxQL queries.

Line protocol escaping comes from influxdb-client's ``Point``; the transport is httpx against the v1
``/write`` and ``/query`` endpoints, which InfluxDB 1.x serves and 2.x/3.x serve for compatibility.
A failed write keeps its points (bounded) and retries on the next flush: a database restart costs the
dashboards a gap of seconds, not the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

import httpx
from influxdb_client import Point, WritePrecision

from core.errors import LinetwinError
from core.sample import Sample
from core.settings import InfluxSettings
from twin.alerts import Alert
from twin.ports import ModelOutput

log = logging.getLogger(__name__)

MAX_PENDING = 200_000


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


class InfluxWriter:
    """Batches line-protocol points and posts them every ``flush_interval_ms`` or ``batch_size`` points."""

    def __init__(self, settings: InfluxSettings, enabled: bool = True) -> None:
        self._settings = settings
        self.enabled = enabled
        self._pending: deque[str] = deque(maxlen=MAX_PENDING)
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None
        self.written = 0
        self.failed_flushes = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, lines: list[str]) -> None:
        if not self.enabled:
            return
        self._pending.extend(lines)
        if len(self._pending) >= self._settings.batch_size:
            self._wake.set()

    async def run(self) -> None:
        if not self.enabled:
            return
        self._client = httpx.AsyncClient(timeout=self._settings.timeout_s)
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.flush_interval_ms / 1000)
                self._wake.clear()
                await self.flush()
        finally:
            await self.flush()
            await self._client.aclose()

    async def flush(self) -> None:
        while self._pending and self._client is not None:
            batch = [
                self._pending.popleft() for _ in range(min(len(self._pending), self._settings.batch_size))
            ]
            headers, params = _auth(self._settings)
            params |= {"rp": self._settings.retention_policy, "precision": "ns"}
            try:
                response = await self._client.post(
                    f"{self._settings.url}/write", params=params, headers=headers, content="\n".join(batch)
                )
                if response.status_code == 404:  # database missing (fresh influxd): create it once
                    await self._create_database(headers)
                    response = await self._client.post(
                        f"{self._settings.url}/write",
                        params=params,
                        headers=headers,
                        content="\n".join(batch),
                    )
                response.raise_for_status()
                self.written += len(batch)
            except httpx.HTTPError as exc:
                self.failed_flushes += 1
                self._pending.extendleft(reversed(batch))
                log.warning(
                    "influx write failed, will retry", extra={"error": str(exc), "points": len(batch)}
                )
                return

    async def _create_database(self, headers: dict[str, str]) -> None:
        assert self._client is not None
        await self._client.post(
            f"{self._settings.url}/query",
            params={"q": f'CREATE DATABASE "{self._settings.database}"'},
            headers=headers,
        )


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
