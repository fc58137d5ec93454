"""Run a Grafana dashboard's queries as Grafana's InfluxDB datasource would (see test_dashboard_queries)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.localservices import Influxd
from core.settings import Settings

INTERVAL = "10s"


def time_filter(influxd: Influxd, database: str) -> str:
    first = influxd.query('SELECT first("value") FROM "process"', database)[0]["values"][0][0]
    return f"time >= '{first}' AND time <= now() + 30d"


def _values(influxd: Influxd, query: str, database: str) -> list[str]:
    series = influxd.query(query, database)
    return sorted({str(row[-1]) for serie in series for row in serie["values"]})


def resolve_variables(
    dashboard: dict[str, Any], influxd: Influxd, settings: Settings, time_filter: str
) -> dict[str, str]:
    resolved: dict[str, str] = {"line": re.escape(settings.line)}
    for variable in dashboard["templating"]["list"]:
        query = variable["query"].replace("$timeFilter", time_filter)
        query = interpolate(query, resolved, time_filter)
        values = _values(influxd, query, settings.influx.database)
        if variable["name"] == "line":
            assert settings.line in values, "the line variable lists the line that ran"
            continue
        assert values, f"variable {variable['name']} of {dashboard['uid']} has no values"
        resolved[variable["name"]] = variable.get("allValue") or "(" + "|".join(map(re.escape, values)) + ")"
    return resolved


def interpolate(query: str, variables: dict[str, str], time_filter: str) -> str:
    query = query.replace("$timeFilter", time_filter).replace("$__interval", INTERVAL)
    for name, value in variables.items():
        query = query.replace(f"${name}", value)
    assert not re.search(r"\$\w", query), f"unresolved variable in {query}"
    return query


def has_values(series: list[dict[str, Any]]) -> bool:
    return any(value is not None for serie in series for row in serie["values"] for value in row[1:])


def empty_panels(path: Path, influxd: Influxd, settings: Settings) -> list[str]:
    """Every panel and annotation query of the dashboard at ``path`` that returns no data."""
    dashboard = json.loads(path.read_text())
    database = settings.influx.database
    window = time_filter(influxd, database)
    variables = resolve_variables(dashboard, influxd, settings, window)
    queries = [
        (panel["title"], target["query"]) for panel in dashboard["panels"] for target in panel["targets"]
    ]
    queries += [(f"annotation {a['name']}", a["query"]) for a in dashboard["annotations"]["list"]]
    return [
        f"{title}: {query}"
        for title, query in queries
        if not has_values(influxd.query(interpolate(query, variables, window), database))
    ]
