"""Battery passport records (JSON-LD) of cells and rolls, and the FAIR metadata of a line's series."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from core.records import Parameter
from models.line import SNAPSHOT_VERSION
from twin import fair
from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import Name, Problem
from twin.passport import PassportSource, cell_iri, kept_cell_passport, kept_roll_passport, line_alerts

router = APIRouter(
    tags=["passport"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 404: {"model": Problem}, 503: {"model": Problem}},
)
JSONLD: dict[str, Any] = {"application/ld+json": {}}


def _parameters(twin: TwinDep, line: str) -> list[Parameter]:
    worker = twin.engine.workers.get(line)
    return worker.analyser.parameters() if worker is not None else []


@router.get("/cells/{cell_id}/passport", responses={200: {"content": JSONLD}})
async def cell_passport(
    twin: TwinDep, cell_id: Name, version: Annotated[int | None, Query(ge=1, le=2**31)] = None
) -> dict[str, Any]:
    """The cell's passport record; ``version`` gives one made earlier, as it was then."""
    state = twin.engine.state
    cell = state.cell(cell_id)
    if cell is None:
        raise HTTPException(404, f"cell {cell_id!r} has not been seen")
    source = PassportSource(twin.settings.influx, fair.identified(twin.description, twin.settings))
    if version is not None:
        kept = state.passport(cell_iri(fair.identified(twin.description, twin.settings), cell_id), version)
        if kept is None:
            raise HTTPException(404, f"cell {cell_id!r} has no passport version {version}")
        return {k: v for k, v in kept.items() if k != "digest"}
    alerts = line_alerts(twin.engine.alerts, cell.line)
    record = await kept_cell_passport(
        source, state, alerts, _parameters(twin, cell.line), cell_id, time.time_ns()
    )
    assert record is not None
    return record


@router.get("/rolls/{roll_id}/passport", responses={200: {"content": JSONLD}})
async def roll_passport(twin: TwinDep, roll_id: Name) -> dict[str, Any]:
    """A roll's record: the steps it passed with whole-roll summaries, its alerts and its cells."""
    state = twin.engine.state
    passages = state.roll(roll_id)
    if not passages:
        raise HTTPException(404, f"roll {roll_id!r} has not been seen")
    source = PassportSource(twin.settings.influx, fair.identified(twin.description, twin.settings))
    parameters = _parameters(twin, passages[0].line)
    alerts = line_alerts(twin.engine.alerts, passages[0].line)
    record = await kept_roll_passport(source, state, alerts, parameters, roll_id, time.time_ns())
    assert record is not None
    return record


@router.get("/cells")
async def cells(
    twin: TwinDep, line: Name, since_ns: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0
) -> dict[str, list[str]]:
    """The cells of a line formed since ``since_ns`` (for exporting their passports)."""
    return {"cells": twin.engine.state.cells_since(line, since_ns)}


@router.get("/lines/{line}/metadata", responses={200: {"content": JSONLD}})
async def metadata(twin: TwinDep, line: Name) -> dict[str, Any]:
    """Every described series with its unit (UCUM, QUDT), source, step and role, and the model class
    and version of each step (JSON-LD)."""
    worker = twin.engine.workers.get(line)
    if worker is None:
        raise HTTPException(404, f"this twin does not serve line {line!r}; it serves {twin.engine.lines}")
    events = twin.engine.state.model_events(line)
    rebaselined = {e.step: e.at_ns for e in events if e.action == "rebaseline"}
    description = fair.identified(twin.description, twin.settings)
    return fair.line_metadata(
        twin.settings, description, worker.analyser.step_models(), SNAPSHOT_VERSION, rebaselined
    )
