"""Every Grafana panel, variable and annotation query returns data from a real influxd.

No Grafana runs here, so the test does what Grafana's InfluxDB datasource does with a raw InfluxQL
query: resolve the template variables by running their queries (multi-value "All" as a regex
alternation, as Grafana formats it), replace ``$timeFilter`` and ``$__interval``, and send the query to
``/query``. The database is filled by the real loop: simulator → connectors → twin, with a drifting
scenario so alerts exist too.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bench.e2e import pipeline_settings, running_twin, upstream, workdir
from core.localservices import Influxd, Mosquitto, ServiceError
from core.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.longrun]

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "dashboards/json").glob("*.json"))
INTERVAL = "10s"
# Charted only once the cell model has calibrated on its first 48 formed cells (several plant hours),
# longer than this test's run; issue 7 keeps a note to cover them with a long-run fixture.
LONG_RUN_PANELS = {"Expected vs measured capacity", "K-value batch threshold"}


def _count(influxd: Influxd, query: str, database: str) -> int:
    try:
        series = influxd.query(query, database)
    except ServiceError:  # the database is created by the first write
        return 0
    return int(series[0]["values"][0][1]) if series else 0


async def _fill(settings: Settings, influxd: Influxd) -> None:
    """Run the loop until every measurement the dashboards read has data, including cell results."""
    database = settings.influx.database
    line = f"\"line\" = '{settings.line}'"
    wanted = {
        "alerts": (f'SELECT count("title") FROM "alert" WHERE {line}', 1),
        "k-values": (f'SELECT count("value") FROM "process" WHERE {line} AND "signal" = \'k_value\'', 1),
        # counters are written every 10 s: three readings make a rate on the connector-health panels
        "connector": ('SELECT count("received") FROM "connector" GROUP BY "source" LIMIT 1', 3),
        "parameters": (f'SELECT count("value") FROM "model" WHERE {line} AND "kind" = \'parameter\'', 1),
    }
    with upstream(settings):
        _publish_garbage(settings)
        async with running_twin(settings):
            deadline = time.monotonic() + 150
            while missing := [
                name for name, (q, least) in wanted.items() if _count(influxd, q, database) < least
            ]:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"the loop wrote no {missing} within 150 s (600x: before plant time is a day ahead)"
                    )
                await asyncio.sleep(2)


def _publish_garbage(settings: Settings) -> None:
    """One malformed cycler message, so the connector-health panel of rejects has a reason to show."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(settings.mqtt.host, settings.mqtt.port)
    client.loop_start()
    topic = f"{settings.site}/formation/{settings.line}/cycler1/ch01/data"
    client.publish(topic, b"{not json", qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


@pytest.fixture(scope="module")
def filled(mosquitto: Mosquitto, influxd: Influxd) -> Iterator[Settings]:
    settings = pipeline_settings(
        mosquitto.port, influxd.url, workdir(), scenario="pump-wear", speed=600.0, tick_s=2.0
    )
    asyncio.run(_fill(settings, influxd))
    yield settings


def _time_filter(influxd: Influxd, database: str) -> str:
    first = influxd.query('SELECT first("value") FROM "process"', database)[0]["values"][0][0]
    return f"time >= '{first}' AND time <= now() + 30d"


def _values(influxd: Influxd, query: str, database: str) -> list[str]:
    series = influxd.query(query, database)
    return sorted({str(row[-1]) for serie in series for row in serie["values"]})


def _resolve_variables(
    dashboard: dict[str, Any], influxd: Influxd, settings: Settings, time_filter: str
) -> dict[str, str]:
    resolved: dict[str, str] = {"line": re.escape(settings.line)}
    for variable in dashboard["templating"]["list"]:
        query = variable["query"].replace("$timeFilter", time_filter)
        query = _interpolate(query, resolved, time_filter)
        values = _values(influxd, query, settings.influx.database)
        if variable["name"] == "line":
            assert settings.line in values, "the line variable lists the line that ran"
            continue
        assert values, f"variable {variable['name']} of {dashboard['uid']} has no values"
        resolved[variable["name"]] = variable.get("allValue") or "(" + "|".join(map(re.escape, values)) + ")"
    return resolved


def _interpolate(query: str, variables: dict[str, str], time_filter: str) -> str:
    query = query.replace("$timeFilter", time_filter).replace("$__interval", INTERVAL)
    for name, value in variables.items():
        query = query.replace(f"${name}", value)
    assert not re.search(r"\$\w", query), f"unresolved variable in {query}"
    return query


def _has_values(series: list[dict[str, Any]]) -> bool:
    return any(value is not None for serie in series for row in serie["values"] for value in row[1:])


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_panel_and_annotation_query_returns_data(
    path: Path, filled: Settings, influxd: Influxd
) -> None:
    dashboard = json.loads(path.read_text())
    database = filled.influx.database
    time_filter = _time_filter(influxd, database)
    variables = _resolve_variables(dashboard, influxd, filled, time_filter)
    queries = [
        (panel["title"], target["query"])
        for panel in dashboard["panels"]
        if panel["title"] not in LONG_RUN_PANELS
        for target in panel["targets"]
    ]
    queries += [(f"annotation {a['name']}", a["query"]) for a in dashboard["annotations"]["list"]]
    empty = []
    for title, query in queries:
        series = influxd.query(_interpolate(query, variables, time_filter), database)
        if not _has_values(series):
            empty.append(f"{title}: {query}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
