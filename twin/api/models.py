"""Calibrated model parameters with their uncertainty; re-baselining a step after maintenance."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from twin.api.deps import HolderDep, TwinDep, require, require_reader, who
from twin.api.schemas import (
    ModelEventOut,
    ModelParameters,
    Name,
    ParameterOut,
    Problem,
    RebaselineRequest,
)

router = APIRouter(
    tags=["models"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)


@router.get("/models/parameters", response_model=list[ModelParameters])
async def parameters(twin: TwinDep, line: Name | None = None) -> list[ModelParameters]:
    workers = twin.engine.workers
    if line is not None and line not in workers:
        raise HTTPException(404, f"this twin does not serve line {line!r}")
    chosen = [workers[line]] if line is not None else list(workers.values())
    return [
        ModelParameters(
            line=w.line,
            parameters=[
                ParameterOut(
                    machine=p.machine, name=p.name, value=p.value, sigma=p.sigma, unit=p.unit, source=p.source
                )
                for p in w.analyser.parameters()
            ],
        )
        for w in chosen
    ]


@router.post(
    "/lines/{line}/steps/{step}/rebaseline",
    response_model=ModelEventOut,
    dependencies=[Depends(require("rebaseline"))],
    responses={422: {"model": Problem}},
)
async def rebaseline(
    twin: TwinDep, line: Name, step: Name, request: RebaselineRequest, holder: HolderDep
) -> ModelEventOut:
    """After maintenance (a new pump, a roll change, a recalibrated gauge): the step forgets its
    calibration and calibrates afresh on its next in-control period, while the line's other steps keep
    monitoring; its open conditions return to normal. Needs the API token; recorded with who and when."""
    if line not in twin.engine.workers:
        raise HTTPException(404, f"this twin does not serve line {line!r}")
    try:
        at = twin.engine.rebaseline(line, step, who(request.by, holder), request.note)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None
    by, note = who(request.by, holder), request.note
    return ModelEventOut(line=line, step=step, action="rebaseline", by=by, note=note, at_ns=at)


@router.get("/lines/{line}/model-events", response_model=list[ModelEventOut])
async def model_events(twin: TwinDep, line: Name) -> list[ModelEventOut]:
    """Who re-baselined which step, and when."""
    if line not in twin.engine.workers:
        raise HTTPException(404, f"this twin does not serve line {line!r}")
    return [
        ModelEventOut(line=e.line, step=e.step, action=e.action, by=e.who, note=e.note, at_ns=e.at_ns)
        for e in twin.engine.state.model_events(line)
    ]
