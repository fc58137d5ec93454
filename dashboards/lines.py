"""One Grafana dashboard per described line, generated from its line description (``lines/*.toml``).

What an operator needs of any line is in its description: the steps in flow order, each step's key
values (``key = true``) with their units and spec limits. So each step gets a panel per key value (the
measurement, and the spec limits the twin writes beside it where the description gives them) and a
panel of its detectors' statistics; the line gets the samples each step delivered and the alert log.
No machine or signal name is written here: a new line gets its dashboard by adding its file.
"""

from __future__ import annotations

from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries

from core import linedesc, units
from core.linedesc import LineDescription, Step
from dashboards.panels import LINE, alarm_rates, alert_log, base_dashboard, stat_panel, time_series

GROUP = "GROUP BY time($__interval) fill(none)"
LINES = Path(str(linedesc.builtin_path())).parent


def shipped() -> dict[str, LineDescription]:
    """Every line description in ``lines/``, by file name."""
    return {path.stem: linedesc.load(path) for path in sorted(LINES.glob("*.toml"))}


def _where(step: Step, measurement_signal: str) -> str:
    return f"{LINE} AND \"machine\" = '{step.id}' AND \"signal\" = '{measurement_signal}'"


def _key_panel(step: Step, name: str) -> timeseries.Panel:
    signal = step.signal(name)
    assert signal is not None
    queries = [
        (
            f'SELECT mean("value") FROM "process" WHERE {_where(step, name)} AND $timeFilter {GROUP}',
            "measured",
        )
    ]
    if signal.spec_low is not None and signal.spec_high is not None:
        for kind, legend in (("spec_low", "lower spec"), ("spec_high", "upper spec")):
            queries.append(
                (
                    f'SELECT mean("value") FROM "model" WHERE {_where(step, name)} AND "kind" = \'{kind}\' '
                    f"AND $timeFilter {GROUP}",
                    legend,
                )
            )
    return time_series(
        f"{step.name or step.id}: {name}",
        queries,
        units.symbol(signal.unit),
        signal.description or f"{name} of {step.id}",
    )


def _statistics_panel(step: Step) -> timeseries.Panel:
    query = (
        f'SELECT mean("value") FROM "model" WHERE {LINE} AND "machine" = \'{step.id}\' '
        'AND "kind" = \'statistic\' AND $timeFilter GROUP BY time($__interval), "signal" fill(none)'
    )
    return time_series(
        f"{step.name or step.id}: drift statistics",
        [(query, "$tag_signal")],
        "none",
        "Each detector's statistic of the step's model; an alert is raised where one crosses its limit.",
    )


def line_dashboard(name: str, description: LineDescription) -> db.Dashboard:
    steps = "|".join(s.id for s in description.steps)
    dashboard = base_dashboard(
        f"linetwin-line-{name}",
        f"linetwin · {description.name or description.line}",
        f"The steps of {description.line} in material-flow order, from its line description.",
        ["line", name],
    ).with_panel(
        stat_panel(
            "Samples received (per step)",
            [
                (
                    f'SELECT count("value") FROM "process" WHERE {LINE} AND "machine" =~ /^({steps})$/ '
                    'AND $timeFilter GROUP BY "machine"',
                    "$tag_machine",
                )
            ],
            "short",
            "How many samples each step delivered in the time range; 0 means it is silent.",
            [(None, "red"), (1, "green")],
            width=24,
        )
    )
    halves = 0
    for step in description.steps:
        for signal in step.signals:
            if signal.key:
                dashboard = dashboard.with_panel(_key_panel(step, signal.name))
                halves += 1
        dashboard = dashboard.with_panel(_statistics_panel(step))
        halves += 1
    # beside the last half-width panel, or a row of its own
    return dashboard.with_panel(alert_log(width=12 if halves % 2 else 24)).with_panel(alarm_rates())
