"""Calibrated model parameters with their uncertainty."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import ModelParameters, Name, ParameterOut, Problem

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
