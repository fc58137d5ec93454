"""Panel and variable builders shared by every linetwin dashboard.

Each helper fixes what all dashboards share (the InfluxDB datasource, units, the alert annotation, the
template variables), so a dashboard definition reads as a list of what the operator sees.
"""

from __future__ import annotations

from typing import TypeVar

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, histogram, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as model

from dashboards.influxql import DATASOURCE, Annotation, Target

LINE = '"line" =~ /^$line$/'
MACHINE = '"machine" =~ /^$machine$/'
CHANNEL = '"channel" =~ /^$channel$/'
ROLL = '"roll_id" =~ /^$roll$/'

Query = tuple[str, str]  # (InfluxQL, legend alias)


def _targets(queries: list[Query], table_format: bool = False) -> list[cogbuilder.Builder[Dataquery]]:
    return [
        Target(chr(ord("A") + index), query, alias, table_format)
        for index, (query, alias) in enumerate(queries)
    ]


def _thresholds(steps: list[tuple[float | None, str]]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


Panel = TypeVar("Panel", timeseries.Panel, stat.Panel, table.Panel, heatmap.Panel, histogram.Panel)


def _panel(
    panel: Panel,
    title: str,
    queries: list[Query],
    description: str,
    width: int,
    height: int,
    table_format: bool = False,
) -> Panel:
    """What every panel has: title, description, the InfluxDB datasource, its queries, its place."""
    return (
        panel.title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries, table_format))
        .span(width)
        .height(height)
    )


def time_series(
    title: str, queries: list[Query], unit: str, description: str, width: int = 12, height: int = 8
) -> timeseries.Panel:
    panel = _panel(timeseries.Panel(), title, queries, description, width, height)
    return panel.unit(unit).span_nulls(True).line_width(1).fill_opacity(5)


def stat_panel(
    title: str,
    queries: list[Query],
    unit: str,
    description: str,
    steps: list[tuple[float | None, str]] | None = None,
    width: int = 6,
) -> stat.Panel:
    panel = _panel(stat.Panel(), title, queries, description, width, 4).unit(unit)
    return panel.thresholds(_thresholds(steps)) if steps else panel


def table_panel(
    title: str, queries: list[Query], description: str, width: int = 24, height: int = 8
) -> table.Panel:
    return _panel(table.Panel(), title, queries, description, width, height, table_format=True)


def alert_log(width: int = 24) -> table.Panel:
    """Every alert state change of the line, newest first: what drifted, by how much, cause, action."""
    return table_panel(
        "Alerts",
        [
            (
                f'SELECT "title", "cause", "magnitude", "action", "machine", "signal", "state" '
                f'FROM "alert" WHERE {LINE} AND $timeFilter ORDER BY time DESC LIMIT 100',
                "",
            )
        ],
        "Every alert state change: what drifted, how much, the likely cause and what to do.",
        width=width,
    )


def alarm_rates(width: int = 24) -> stat.Panel:
    """The figures an alarm system is judged by (EEMUA 191, ISA-18.2), as the twin charts them: alarms
    per 10 minutes and the peak over the last day, floods, standing and chattering alarms."""
    return stat_panel(
        "Alarm system (last 24 h)",
        [
            (
                f'SELECT last("value") FROM "model" WHERE {LINE} AND "kind" = \'alarm_rate\' AND $timeFilter '
                'GROUP BY "signal"',
                "$tag_signal",
            )
        ],
        "short",
        "EEMUA 191 asks for about 1 alarm per 10 minutes in steady operation; a flood is more than 10 in "
        "10 minutes; a chattering alarm is raised 3 times within a minute.",
        width=width,
    )


def heatmap_panel(title: str, queries: list[Query], unit: str, description: str) -> heatmap.Panel:
    return _panel(heatmap.Panel(), title, queries, description, 12, 8).unit(unit).calculate(False)


def histogram_panel(title: str, queries: list[Query], unit: str, description: str) -> histogram.Panel:
    return _panel(histogram.Panel(), title, queries, description, 12, 8, table_format=True).unit(unit)


def tag_variable(name: str, label: str, measurement: str, key: str, where: str = "") -> db.QueryVariable:
    condition = f" WHERE {where}" if where else ""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"{condition}')
        .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )


def roll_variable() -> db.QueryVariable:
    """Rolls are a field (one value per roll, not a series), so they come from DISTINCT, not tag values."""
    return (
        db.QueryVariable("roll")
        .label("Roll")
        .datasource(DATASOURCE)
        .query(f'SELECT DISTINCT("roll_id") FROM "process" WHERE {LINE} AND $timeFilter')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def alert_annotation() -> Annotation:
    """Twin alerts on every time-series panel: when each drift began, with its cause in the text."""
    return Annotation(
        "Alerts",
        f'SELECT "title", "text", "cause" FROM "alert" WHERE {LINE} '
        "AND \"state\" = 'active_unacknowledged' AND $timeFilter",
        color="red",
        tags_column="cause",
    )


def base_dashboard(uid: str, title: str, description: str, tags: list[str]) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["linetwin", *tags])
        .refresh("10s")
        .time("now-1h", "now+5m")
        .timezone("utc")
        .editable()
        .annotation(alert_annotation())
        .with_variable(tag_variable("line", "Line", "process", "line"))
    )
