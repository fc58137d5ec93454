"""A battery passport record per cell: who made it, from what material, what happened to that material.

The manufacturing part of a passport (EU 2023/1542 Annex XIII; Battery Pass data model 1.2, IDTA-02035)
is what linetwin already knows: the cell's identity and formation, its roll and position from the
genealogy, and for every step upstream along the line's material flow what that step measured on the
cell's own material (the quality signals' summary over ``MATERIAL_HALF_M`` around its position, from
InfluxDB), the setpoints in force, the model parameters with their uncertainty, and every alert that
touched that material. ``docs/passport.md`` maps each field to the public models.

A record is a JSON-LD document (``CONTEXT``); ``PassportSource`` gathers its inputs from the state file,
the alert store and InfluxDB, so the API and ``twin export passport`` build the same record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.linedesc import LineDescription, Step
from core.qudt import ucum, unit_terms
from core.records import Parameter
from core.settings import InfluxSettings
from twin.alerts import Alert, AlertStore
from twin.fair import CONTEXT as FAIR_CONTEXT
from twin.fair import iso, line_iri
from twin.influx import query
from twin.store import CellRecord, RollRecord, StateStore

MATERIAL_HALF_M = 5.0  # a cell's material: its position on the roll ± this (the coater's 10 m bins)
POSITION_ROLES = ("roll_position",)
RESULT_ROLES = {
    "charge_capacity": "chargeCapacity",
    "discharge_capacity": "dischargeCapacity",
    "first_cycle_efficiency": "firstCycleEfficiency",
    "k_value": "kValue",
}
BATTERY_PASS = "urn:samm:io.BatteryPass.GeneralProductInformation:1.2.0#"
IDTA_NAMEPLATE = "urn:samm:io.admin-shell.idta.batterypass.digital_nameplate:1.0.0#"

CONTEXT: dict[str, Any] = {
    **FAIR_CONTEXT,
    "schema": "https://schema.org/",
    "bp": BATTERY_PASS,
    "np": IDTA_NAMEPLATE,
    "passportVersion": "lt:passportVersion",
    "built": {"@id": "dct:modified", "@type": "xsd:dateTime"},
    "identification": "lt:identification",
    "cellId": "np:serialNumber",
    "batteryPassportIdentifier": {"@id": "bp:batteryPassportIdentifier", "@type": "@id"},
    "manufacturingDate": {"@id": "bp:manufacturingDate", "@type": "xsd:date"},
    "facility": "np:uniqueFacilityIdentifier",
    "lineName": "schema:name",
    "formationStep": "lt:formationStep",
    "channel": "lt:channel",
    "materialLineage": {"@id": "lt:materialLineage", "@container": "@list"},
    "material": "lt:material",
    "recorded": "lt:recordedByTheTwin",
    "roll": "lt:roll",
    "positionM": "lt:positionOnRoll",
    "from": {"@id": "prov:startedAtTime", "@type": "xsd:dateTime"},
    "to": {"@id": "prov:endedAtTime", "@type": "xsd:dateTime"},
    "materialBasis": "lt:materialBasis",
    "qualitySignals": {"@id": "lt:qualitySignal", "@container": "@set"},
    "setpoints": {"@id": "lt:setpoint", "@container": "@set"},
    "parameters": {"@id": "lt:parameter", "@container": "@set"},
    "mean": "schema:value",
    "sd": "lt:standardDeviation",
    "min": "schema:minValue",
    "max": "schema:maxValue",
    "count": "lt:count",
    "value": "schema:value",
    "sigma": "lt:standardUncertainty",
    "origin": "lt:origin",
    "alerts": {"@id": "lt:alert", "@container": "@set"},
    "cause": "lt:cause",
    "state": "lt:alertState",
    "onset": {"@id": "lt:onset", "@type": "xsd:dateTime"},
    "magnitude": "lt:magnitude",
    "formation": "lt:formation",
    "chargeCapacity": "lt:chargeCapacity",
    "dischargeCapacity": "lt:dischargeCapacity",
    "firstCycleEfficiency": "lt:firstCycleEfficiency",
    "kValue": "lt:kValue",
    "verdict": "lt:screeningVerdict",
    "cells": {"@id": "lt:cell", "@container": "@set"},
}


def cell_iri(description: LineDescription, cell_id: str) -> str:
    return f"{line_iri(description)}:cell:{cell_id}"


def roll_iri(description: LineDescription, roll_id: str) -> str:
    return f"{line_iri(description)}:roll:{roll_id}"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True, slots=True)
class Window:
    """When a step worked on a cell's material, and on what that rests: ``position`` (its roll position
    within ``MATERIAL_HALF_M`` of the cell's) or ``passage`` (the whole passage of the roll: the step
    reports no position, or none near the cell's was stored, as when the twin started mid-roll)."""

    start_ns: int
    end_ns: int
    basis: str = "passage"


class PassportSource:
    """The inputs of passport records from InfluxDB (read-only InfluxQL, as the dashboards read)."""

    def __init__(self, influx: InfluxSettings, description: LineDescription) -> None:
        self.influx = influx
        self.description = description

    async def _rows(self, influxql: str, bind: dict[str, Any]) -> list[dict[str, Any]]:
        return await query(self.influx, influxql, bind)

    async def cell_results(self, cell: CellRecord) -> dict[str, float]:
        """The cell's last formation and aging values, by signal."""
        series = await self._rows(
            'SELECT last("value") FROM "process" WHERE "line" = $line AND "machine" = $machine '
            f'AND "cell_id" = $cell AND time >= {cell.first_ns} AND time <= {cell.last_ns} GROUP BY "signal"',
            {"line": self.description.line, "machine": cell.machine, "cell": cell.cell_id},
        )
        return {s["tags"]["signal"]: float(s["values"][0][1]) for s in series if s.get("values")}

    async def material_window(self, step: Step, passage: RollRecord, position_m: float) -> Window:
        """When ``step`` worked on the material around ``position_m`` of its roll: the whole passage if
        the step has no roll position or none matched."""
        whole = Window(passage.first_ns, passage.last_ns)
        position = next((s.name for s in step.signals if (s.role or s.name) in POSITION_ROLES), None)
        if position is None or not math.isfinite(position_m):
            return whole
        low, high = position_m - MATERIAL_HALF_M, position_m + MATERIAL_HALF_M
        times = []
        for selector in ("first", "last"):
            series = await self._rows(
                f'SELECT {selector}("value") FROM "process" WHERE "line" = $line '
                'AND "machine" = $machine AND "signal" = $signal AND "roll_id" = $roll '
                f'AND "value" >= {low!r} AND "value" <= {high!r} '
                f"AND time >= {passage.first_ns} AND time <= {passage.last_ns}",
                {
                    "line": self.description.line,
                    "machine": step.id,
                    "signal": position,
                    "roll": passage.roll_id,
                },
            )
            if series and series[0].get("values"):
                times.append(int(series[0]["values"][0][0]))
        return Window(times[0], times[1], "position") if len(times) == 2 else whole

    async def summaries(self, step: Step, window: Window) -> dict[str, dict[str, float]]:
        """Mean, σ, min, max and count of each good value of the step's signals in the window."""
        series = await self._rows(
            'SELECT mean("value"), stddev("value"), min("value"), max("value"), count("value") '
            'FROM "process" WHERE "line" = $line AND "machine" = $machine AND "quality" = \'good\' '
            f'AND time >= {window.start_ns} AND time <= {window.end_ns} GROUP BY "signal"',
            {"line": self.description.line, "machine": step.id},
        )
        out = {}
        for s in series:
            if not s.get("values"):
                continue
            _, mean, sd, low, high, count = s["values"][0]
            out[s["tags"]["signal"]] = {
                "mean": mean,
                "sd": sd if sd is not None else 0.0,
                "min": low,
                "max": high,
                "count": int(count),
            }
        return out

    async def setpoints(self, step: Step, window: Window) -> dict[str, float]:
        """Each writable setpoint's value in force at the end of the window."""
        names = [s.name for s in step.signals if s.setpoint is not None]
        if not names:
            return {}
        alternatives = " OR ".join(f'"signal" = {_quote(n)}' for n in names)
        series = await self._rows(
            f'SELECT last("value") FROM "process" WHERE "line" = $line AND "machine" = $machine '
            f'AND ({alternatives}) AND time <= {window.end_ns} GROUP BY "signal"',
            {"line": self.description.line, "machine": step.id},
        )
        return {s["tags"]["signal"]: float(s["values"][0][1]) for s in series if s.get("values")}


def _alert(alert: Alert, now_ns: int) -> dict[str, Any]:
    return {
        "@id": f"urn:linetwin:alert:{alert.id}",
        "step": alert.machine,
        "signal": alert.signal,
        "cause": alert.cause,
        "title": alert.title,
        "state": alert.state(now_ns).value,
        "onset": iso(alert.onset_ns),
        "magnitude": alert.magnitude,
        "ucum": ucum(alert.unit) if alert.unit else "",
    }


def _quantity(value: float | None, unit: str) -> dict[str, Any] | None:
    if value is None or not math.isfinite(value):
        return None
    return {"value": value, **unit_terms(unit)}


def upstream_steps(description: LineDescription, step_id: str) -> list[Step]:
    """The steps upstream of ``step_id`` along the material flow, first step first."""
    sources = {f.target: f.source for f in description.flow}
    chain: list[Step] = []
    current = sources.get(step_id)
    while current is not None and all(s.id != current for s in chain):
        step = description.step(current)
        if step is not None:
            chain.insert(0, step)
        current = sources.get(current)
    return chain


def _material(description: LineDescription, step: Step) -> str:
    return next((f.material for f in description.flow if f.source == step.id), "")


def _units(step: Step) -> dict[str, str]:
    return {s.name: s.unit for s in step.signals}


async def lineage(
    source: PassportSource,
    roll_id: str,
    passages: Sequence[RollRecord],
    steps: Sequence[Step],
    parameters: Sequence[Parameter],
    position_m: float,
) -> list[dict[str, Any]]:
    """What each step did to the material around ``position_m`` of roll ``roll_id``."""
    by_machine = {p.machine: p for p in passages}
    records = []
    for step in steps:
        passage = by_machine.get(step.id)
        if passage is None:  # the material passed this step before the twin watched it
            records.append(
                {
                    "step": step.id,
                    "stepKind": step.kind,
                    "material": _material(source.description, step),
                    "roll": roll_id,
                    "recorded": False,
                }
            )
            continue
        window = await source.material_window(step, passage, position_m)
        summaries = await source.summaries(step, window)
        units = _units(step)
        key = [s for s in step.signals if s.key]
        quality = []
        for signal in key:
            summary = summaries.get(signal.name)
            if summary is None:
                continue
            role = signal.role or signal.name
            entry: dict[str, Any] = {"signal": signal.name, "role": role, **summary}
            quality.append(entry | unit_terms(signal.unit))
        setpoints = await source.setpoints(step, window)
        records.append(
            {
                "step": step.id,
                "stepKind": step.kind,
                "material": _material(source.description, step),
                "roll": roll_id,
                "recorded": True,
                "from": iso(window.start_ns),
                "to": iso(window.end_ns),
                "materialBasis": window.basis,
                "qualitySignals": quality,
                "setpoints": [
                    {"signal": name, **(_quantity(value, units.get(name, "")) or {})}
                    for name, value in sorted(setpoints.items())
                ],
                "parameters": [
                    {
                        "name": p.name,
                        "value": p.value,
                        "sigma": p.sigma,
                        "ucum": ucum(p.unit),
                        "origin": p.source,
                    }
                    for p in parameters
                    if p.machine == step.id
                ],
            }
        )
    return records


def verdict(results: dict[str, float], alerts: Sequence[dict[str, Any]]) -> str:
    """The screening verdict: flagged by an alert on its material or itself, passed once aged, or
    pending while its K-value is not known."""
    if alerts:
        return "flagged: " + ", ".join(sorted({a["cause"] for a in alerts}))
    return "pass" if "k_value" in results else "pending: aging not finished"


async def cell_passport(
    source: PassportSource,
    cell: CellRecord,
    passages: Sequence[RollRecord],
    alerts: Sequence[Alert],
    parameters: Sequence[Parameter],
    now_ns: int,
) -> dict[str, Any]:
    """The passport record of one cell (unversioned; ``StateStore.keep_passport`` versions it)."""
    description = source.description
    results = await source.cell_results(cell)
    cell_step = description.step(cell.machine)
    units = _units(cell_step) if cell_step is not None else {}
    roles = {s.name: (s.role or s.name) for s in cell_step.signals} if cell_step is not None else {}
    position = next((v for k, v in results.items() if roles.get(k, k) == "position_m"), math.nan)
    steps = upstream_steps(description, cell.machine)
    material = (
        await lineage(source, cell.roll_id, passages, steps, parameters, position) if cell.roll_id else []
    )
    for entry in material:
        entry["positionM"] = position
    touched = [
        _alert(a, now_ns)
        for a in alerts
        if cell.cell_id in a.cells or (cell.roll_id is not None and cell.roll_id in a.rolls)
    ]
    formation: dict[str, Any] = {}
    for name, value in results.items():
        term = RESULT_ROLES.get(roles.get(name, name))
        if term is not None and (quantity := _quantity(value, units.get(name, ""))) is not None:
            formation[term] = quantity
    formation["verdict"] = verdict({roles.get(k, k): v for k, v in results.items()}, touched)
    return {
        "@context": CONTEXT,
        "@id": cell_iri(description, cell.cell_id),
        "@type": "lt:CellPassport",
        "identification": {
            "cellId": cell.cell_id,
            "batteryPassportIdentifier": cell_iri(description, cell.cell_id),
            "manufacturingDate": iso(cell.first_ns)[:10],
            "facility": f"{description.site}/{description.area}",
            "line": description.line,
            "lineName": description.name,
            "formationStep": cell.machine,
            "channel": cell.channel or "",
        },
        "materialLineage": material,
        "alerts": touched,
        "formation": formation,
    }


async def roll_passport(
    source: PassportSource,
    roll_id: str,
    passages: Sequence[RollRecord],
    cells: Sequence[CellRecord],
    alerts: Sequence[Alert],
    parameters: Sequence[Parameter],
    now_ns: int,
) -> dict[str, Any]:
    """A roll's record: every step it passed with its whole-roll summaries, its alerts and its cells."""
    description = source.description
    steps = [
        s for s in description.steps if any(p.machine == s.id for p in passages) and s.kind != "formation"
    ]
    return {
        "@context": CONTEXT,
        "@id": roll_iri(description, roll_id),
        "@type": "lt:RollRecord",
        "identification": {
            "roll": roll_id,
            "facility": f"{description.site}/{description.area}",
            "line": description.line,
            "lineName": description.name,
            "manufacturingDate": iso(min(p.first_ns for p in passages))[:10] if passages else "",
        },
        "materialLineage": await lineage(source, roll_id, passages, steps, parameters, math.nan),
        "alerts": [_alert(a, now_ns) for a in alerts if roll_id in a.rolls],
        "cells": [cell_iri(description, c.cell_id) for c in cells],
    }


def screened(record: dict[str, Any]) -> bool:
    """A cell record whose verdict is in (aged and passed, or flagged): it is kept as made."""
    return not str(record.get("formation", {}).get("verdict", "pending")).startswith("pending")


def material_points(record: dict[str, Any]) -> int:
    """How many stored values a record summarises: fewer than before means InfluxDB's retention has
    dropped some, and the stored version is kept (``StateStore.keep_passport``)."""
    return sum(
        int(q["count"]) for step in record.get("materialLineage", []) for q in step.get("qualitySignals", [])
    )


ALL_ALERTS = 1_000_000


def line_alerts(alerts: AlertStore, line: str) -> list[Alert]:
    """Every alert of the line, read once for all the records an export builds."""
    return alerts.find(line=line, limit=ALL_ALERTS)


async def kept_cell_passport(
    source: PassportSource,
    state: StateStore,
    alerts: Sequence[Alert],
    parameters: Sequence[Parameter],
    cell_id: str,
    now_ns: int,
) -> dict[str, Any] | None:
    """A cell's versioned passport (None for a cell never seen), from its line's ``alerts``: built
    afresh, kept as ``StateStore.keep_passport`` decides."""
    cell = state.cell(cell_id)
    if cell is None:
        return None
    passages = state.roll(cell.roll_id) if cell.roll_id else []
    record = await cell_passport(source, cell, passages, alerts, parameters, now_ns)
    return state.keep_passport(record["@id"], record, material_points, screened)


async def kept_roll_passport(
    source: PassportSource,
    state: StateStore,
    alerts: Sequence[Alert],
    parameters: Sequence[Parameter],
    roll_id: str,
    now_ns: int,
) -> dict[str, Any] | None:
    """A roll's versioned record (None for a roll never seen), from its line's ``alerts``."""
    passages = state.roll(roll_id)
    if not passages:
        return None
    cells = state.cells_of_roll(roll_id)
    record = await roll_passport(source, roll_id, passages, cells, alerts, parameters, now_ns)
    return state.keep_passport(record["@id"], record, material_points)
