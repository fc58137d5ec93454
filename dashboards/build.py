"""Generate linetwin's Grafana dashboards into dashboards/json/.

``python -m dashboards.build`` writes them; ``python -m dashboards.build --check`` fails when a committed
JSON file differs from what this code generates (run by the tests, so the JSON never goes stale).
Measurements and tags are those of docs/interfaces.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from core import linedesc
from dashboards import lines
from dashboards.panels import (
    CHANNEL,
    LINE,
    MACHINE,
    ROLL,
    alarm_rates,
    alert_log,
    base_dashboard,
    heatmap_panel,
    histogram_panel,
    roll_variable,
    stat_panel,
    table_panel,
    tag_variable,
    time_series,
)

OUTPUT = Path(__file__).parent / "json"
GROUP = "GROUP BY time($__interval) fill(none)"


def process(signal: str, machine: str = MACHINE, extra: str = "") -> str:
    """Mean of one measured signal per interval."""
    return (
        f'SELECT mean("value") FROM "process" WHERE {LINE} AND {machine} AND "signal" = \'{signal}\''
        f"{extra} AND $timeFilter {GROUP}"
    )


def model(signal: str, kind: str, machine: str = MACHINE, by: str = "") -> str:
    """Mean of one twin output (predicted, residual, statistic, threshold, ...) per interval."""
    group = f"{GROUP.replace(' fill', f', {by} fill')}" if by else GROUP
    return (
        f'SELECT mean("value") FROM "model" WHERE {LINE} AND {machine} AND "signal" = \'{signal}\''
        f" AND \"kind\" = '{kind}' AND $timeFilter {group}"
    )


def of_kind(kind: str) -> str:
    """A kind dashboard's machine filter: every step of ``kind`` in the shipped line descriptions, so a
    line's steps are listed by what its description says they are, never by a pattern of their names."""
    ids = sorted({step.id for d in lines.shipped().values() for step in d.steps if step.kind == kind})
    return f'"machine" =~ /^({"|".join(ids)})$/'


def _pilot_step(kind: str) -> str:
    """The simulated pilot line's step of ``kind`` (``lines/pilot-nmc.toml``), which the overview shows."""
    return next(step.id for step in linedesc.load().steps if step.kind == kind)


def quality_panel(title: str, signal: str, unit: str, description: str, extra: str = "") -> timeseries.Panel:
    """Measured vs target and spec limits, the operator's first look at a quality characteristic."""
    return time_series(
        title,
        [
            (process(signal, extra=extra), "measured"),
            (model(signal, "predicted"), "twin prediction"),
            (model(signal, "target"), "target"),
            (model(signal, "spec_low"), "lower spec"),
            (model(signal, "spec_high"), "upper spec"),
        ],
        unit,
        description,
    )


def detector_panel(features: list[str], what: str) -> timeseries.Panel:
    """The CUSUM statistic of each structured residual and its alarm limit (same signal tag)."""
    signals = '"signal" =~ /^(' + "|".join(features) + ")$/"

    def query(kind: str) -> str:
        return (
            f'SELECT mean("value") FROM "model" WHERE {LINE} AND {MACHINE} AND {signals} '
            f'AND "kind" = \'{kind}\' AND $timeFilter GROUP BY time($__interval), "signal" fill(none)'
        )

    return time_series(
        f"Drift statistic: {what}",
        [(query("statistic"), "$tag_signal"), (query("threshold"), "$tag_signal limit")],
        "none",
        "CUSUM statistic of each physics residual; an alert is raised where it crosses its limit "
        "(set from the target in-control average run length, not tuned per fault).",
    )


def overview() -> db.Dashboard:
    coater, calender, cycler = (_pilot_step(k) for k in ("slot_die_coater", "calender", "formation"))
    machines = f'"machine" =~ /^({coater}|{calender}|{cycler})$/'
    return (
        base_dashboard(
            "linetwin-overview",
            "linetwin · Line overview",
            "Each machine's state, key quality values, open alerts and scrap risk.",
            ["overview"],
        )
        .with_panel(
            stat_panel(
                "Samples received (per machine)",
                [
                    (
                        f'SELECT count("value") FROM "process" WHERE {LINE} AND {machines} AND $timeFilter '
                        'GROUP BY "machine"',
                        "$tag_machine",
                    )
                ],
                "short",
                "How many samples each machine delivered in the time range; 0 means it is silent.",
                [(None, "red"), (1, "green")],
                width=8,
            )
        )
        .with_panel(
            stat_panel(
                "Open alerts",
                [
                    (
                        f'SELECT last("value") FROM "model" WHERE {LINE} AND "signal" = \'open_alerts\' '
                        "AND $timeFilter",
                        "open",
                    )
                ],
                "short",
                "Alerts that need an operator: active, or returned but unacknowledged (shelved excluded).",
                [(None, "green"), (1, "red")],
                width=8,
            )
        )
        .with_panel(
            stat_panel(
                "Scrap risk",
                [(model("scrap_risk", "risk", machine=machines, by='"machine"'), "$tag_machine")],
                "percentunit",
                "The twin's estimate of the share of product outside spec if the line runs on as it is.",
                [(None, "green"), (0.05, "orange"), (0.1, "red")],
                width=8,
            )
        )
        .with_panel(
            stat_panel(
                "Dry loading",
                [(process("dry_loading", machine=f"\"machine\" = '{coater}'"), coater)],
                "mg/cm²",
                "Coater gauge: dry areal mass loading.",
            )
        )
        .with_panel(
            stat_panel(
                "Thickness after calender",
                [(process("thickness", machine=f"\"machine\" = '{calender}'"), calender)],
                "µm",
                "Calender gauge: coating thickness after the nip.",
            )
        )
        .with_panel(
            stat_panel(
                "Porosity",
                [(process("porosity", machine=f"\"machine\" = '{calender}'"), calender)],
                "percent",
                "Porosity from thickness and loading after calendering.",
            )
        )
        .with_panel(
            stat_panel(
                "Discharge capacity",
                [(process("discharge_capacity", machine=f"\"machine\" = '{cycler}'"), cycler)],
                "Ah",
                "Mean first discharge capacity of cells finishing formation.",
            )
        )
        .with_panel(alert_log())
        .with_panel(alarm_rates())
    )


def coater() -> db.Dashboard:
    zones = '"signal" =~ /^dryer_zone[0-9]+_temperature$/'
    lanes = '"signal" =~ /^profile_lane[0-9]+$/'
    return (
        base_dashboard(
            "linetwin-coater",
            "linetwin · Coater",
            "Loading against target and spec, the twin's mass-balance prediction, cross-web profile, dryer.",
            ["coater"],
        )
        .with_variable(tag_variable("machine", "Coater", "process", "machine", of_kind("slot_die_coater")))
        .with_variable(roll_variable())
        .with_panel(
            quality_panel(
                "Dry loading vs target",
                "dry_loading",
                "mg/cm²",
                "Gauge loading with the twin's mass-balance prediction from flow, speed, width and solids, "
                "and the recipe's spec limits.",
                extra=f" AND {ROLL}",
            )
        )
        .with_panel(
            time_series(
                "Loading residual (measured − predicted)",
                [(model("dry_loading_residual", "residual"), "residual")],
                "mg/cm²",
                "What the mass balance does not explain; drift here with flat inputs points at the gauge or "
                "the slurry solids.",
            )
        )
        .with_panel(detector_panel(["dry_loading_residual", "pump_flow_deviation"], "loading and flow"))
        .with_panel(
            heatmap_panel(
                "Cross-web profile",
                [
                    (
                        f'SELECT mean("value") FROM "process" WHERE {LINE} AND {MACHINE} AND {lanes} '
                        f'AND $timeFilter GROUP BY time($__interval), "signal" fill(none)',
                        "$tag_signal",
                    )
                ],
                "mg/cm²",
                "Loading per lane across the web; a lasting stripe is a die-lip or shim problem.",
            )
        )
        .with_panel(
            time_series(
                "Dryer zones",
                [
                    (
                        f'SELECT mean("value") FROM "process" WHERE {LINE} AND {MACHINE} AND {zones} '
                        f'AND $timeFilter GROUP BY time($__interval), "signal" fill(none)',
                        "$tag_signal",
                    )
                ],
                "celsius",
                "Zone temperatures; a cold zone leaves residual solvent, a hot one drives binder migration.",
            )
        )
        .with_panel(
            time_series(
                "Pump flow and web speed",
                [(process("pump_flow"), "pump flow (mL/min)"), (process("web_speed"), "web speed (m/min)")],
                "none",
                "The mass-balance inputs; flow sagging below its setpoint is pump wear.",
            )
        )
    )


def calender() -> db.Dashboard:
    return (
        base_dashboard(
            "linetwin-calender",
            "linetwin · Calender",
            "Line load, gap, roll temperature, thickness and porosity against targets, compaction model fit.",
            ["calender"],
        )
        .with_variable(tag_variable("machine", "Calender", "process", "machine", of_kind("calender")))
        .with_variable(roll_variable())
        .with_panel(
            quality_panel(
                "Thickness vs target",
                "thickness",
                "µm",
                "Coating thickness after the nip, the twin's compaction-law prediction and spec limits.",
                extra=f" AND {ROLL}",
            )
        )
        .with_panel(
            time_series(
                "Porosity: measured vs compaction model",
                [
                    (process("porosity"), "measured"),
                    (model("porosity", "predicted"), "compaction model"),
                    (model("porosity", "target"), "target"),
                ],
                "percent",
                "Porosity from thickness and incoming loading against the calibrated compaction law.",
            )
        )
        .with_panel(
            time_series(
                "Line load and roll gap",
                [(process("line_load"), "line load (N/mm)"), (process("roll_gap"), "roll gap (µm)")],
                "none",
                "Force and gap at the nip; thickness falling at flat load points at roll heating.",
            )
        )
        .with_panel(
            time_series(
                "Roll temperature",
                [(process("roll_temperature"), "roll temperature")],
                "celsius",
                "Warm rolls expand and soften the binder: more compaction at the same load.",
            )
        )
        .with_panel(detector_panel(["thickness_residual", "porosity_residual"], "thickness and porosity"))
        .with_panel(
            time_series(
                "Compaction resistance γc (calibrated)",
                [(model("compaction_resistance", "parameter"), "γc")],
                "none",
                "The compaction-law parameter the twin learns online; a trend is a material or roll change.",
            )
        )
    )


def formation() -> db.Dashboard:
    cycler = of_kind("formation")
    return (
        base_dashboard(
            "linetwin-formation",
            "linetwin · Formation",
            "Capacity per channel and per roll of origin, first-cycle efficiency, K-value screening.",
            ["formation"],
        )
        .with_variable(tag_variable("channel", "Channel", "process", "channel"))
        .with_variable(roll_variable())
        .with_panel(
            time_series(
                "Discharge capacity per channel",
                [
                    (
                        f'SELECT mean("value") FROM "process" WHERE {LINE} AND {cycler} AND {CHANNEL} '
                        "AND \"signal\" = 'discharge_capacity' AND $timeFilter "
                        'GROUP BY time($__interval), "channel" fill(none)',
                        "$tag_channel",
                    )
                ],
                "Ah",
                "One channel apart from the others: cycler calibration; all together: upstream loading.",
            )
        )
        .with_panel(
            table_panel(
                "Capacity by roll of origin",
                [
                    (
                        f'SELECT "value" AS "capacity", "roll_id", "cell_id" FROM "process" WHERE {LINE} '
                        f"AND {cycler} AND \"signal\" = 'discharge_capacity' AND {ROLL} AND $timeFilter",
                        "",
                    )
                ],
                "Every formed cell with its capacity and the cathode roll it was built from (genealogy).",
                width=12,
            )
        )
        .with_panel(
            time_series(
                "Expected vs measured capacity",
                [
                    (process("discharge_capacity", machine=cycler), "measured"),
                    (model("discharge_capacity", "predicted", machine=cycler), "expected from loading"),
                ],
                "Ah",
                "Capacity expected from the electrode loading and area the cell was built from.",
            )
        )
        .with_panel(
            time_series(
                "First-cycle efficiency",
                [
                    (
                        f'SELECT mean("value") FROM "process" WHERE {LINE} AND {cycler} AND {CHANNEL} '
                        "AND \"signal\" = 'first_cycle_efficiency' AND $timeFilter "
                        'GROUP BY time($__interval), "channel" fill(none)',
                        "$tag_channel",
                    )
                ],
                "percent",
                "Discharge over charge capacity of the first cycle (SEI formation losses).",
            )
        )
        .with_panel(
            histogram_panel(
                "K-value distribution",
                [
                    (
                        f'SELECT "value" AS "k_value" FROM "process" WHERE {LINE} AND {cycler} '
                        "AND \"signal\" = 'k_value' AND $timeFilter",
                        "",
                    )
                ],
                "none",
                "Self-discharge (mV/day) of aged cells; the tail beyond the batch threshold is scrapped.",
            )
        )
        .with_panel(
            time_series(
                "K-value batch threshold",
                [(model("k_value", "threshold", machine=cycler), "median + k·MAD")],
                "none",
                "The statistical screening threshold the twin sets from each batch.",
            )
        )
        .with_panel(
            time_series(
                "Channel offsets (calibrated)",
                [
                    (
                        f'SELECT mean("value") FROM "model" WHERE {LINE} AND {cycler} '
                        'AND "signal" =~ /^ch[0-9]+_offset$/ AND "kind" = \'parameter\' AND $timeFilter '
                        'GROUP BY time($__interval), "signal" fill(none)',
                        "$tag_signal",
                    )
                ],
                "percentunit",
                "Each channel's mean capacity of its last cells against the median channel: a current "
                "calibration error shows as one channel apart.",
            )
        )
    )


def connectors() -> db.Dashboard:
    def counter(field: str, by: str) -> str:
        return (
            f'SELECT non_negative_derivative(last("{field}"), 1s) FROM "connector" WHERE $timeFilter '
            f'GROUP BY time($__interval), "{by}" fill(none)'
        )

    return (
        base_dashboard(
            "linetwin-connectors",
            "linetwin · Connector health",
            "Samples per second, rejects by reason, spool depth and sequence gaps of the connectors.",
            ["connectors"],
        )
        .with_panel(
            time_series(
                "Samples received /s",
                [(counter("received", "source"), "$tag_source")],
                "short",
                "Per source.",
            )
        )
        .with_panel(
            time_series(
                "Samples written /s",
                [(counter("written", "source"), "$tag_source")],
                "short",
                "Into InfluxDB.",
            )
        )
        .with_panel(
            time_series(
                "Rejects by reason",
                [
                    (
                        'SELECT last("rejected") FROM "connector" WHERE $timeFilter '
                        'GROUP BY time($__interval), "reason" fill(none)',
                        "$tag_reason",
                    )
                ],
                "short",
                "Cumulative rejected inputs per reason; each is also logged once with its detail.",
            )
        )
        .with_panel(
            time_series(
                "Spool depth",
                [
                    (
                        'SELECT last("spool_depth") FROM "connector" WHERE $timeFilter '
                        'GROUP BY time($__interval), "connector" fill(none)',
                        "$tag_connector",
                    )
                ],
                "short",
                "Samples waiting on disk for the database; it empties when InfluxDB is back.",
            )
        )
        .with_panel(
            time_series(
                "Sequence gaps",
                [
                    (
                        'SELECT last("seq_gaps") FROM "connector" WHERE $timeFilter '
                        'GROUP BY time($__interval), "source" fill(none)',
                        "$tag_source",
                    )
                ],
                "short",
                "Messages a source numbered but never delivered; non-zero means data was lost upstream.",
            )
        )
    )


DASHBOARDS = {
    "linetwin-overview": overview,
    "linetwin-coater": coater,
    "linetwin-calender": calender,
    "linetwin-formation": formation,
    "linetwin-connectors": connectors,
}


def render(name: str) -> str:
    return _json(DASHBOARDS[name]())


def _json(dashboard: db.Dashboard) -> str:
    return json.dumps(dashboard.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def rendered() -> dict[Path, str]:
    """Every dashboard file and its text: the ones above, and one per shipped line (``dashboards.lines``)."""
    files = {OUTPUT / f"{name}.json": render(name) for name in DASHBOARDS}
    for name, description in lines.shipped().items():
        files[OUTPUT / "lines" / f"{name}.json"] = _json(lines.line_dashboard(name, description))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a committed dashboard is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in rendered().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(OUTPUT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale dashboards (run python -m dashboards.build): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
