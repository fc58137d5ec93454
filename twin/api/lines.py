"""The line as its description says: steps in material-flow order, their signals, units and limits."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from core import units
from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import LineDescriptionOut, Name, Problem

router = APIRouter(
    tags=["lines"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)


@router.get("/lines/{line}/description", response_model=LineDescriptionOut)
async def description(twin: TwinDep, line: Name) -> LineDescriptionOut:
    """The line description this twin serves the line with (``line_description``), units as UCUM codes
    and as readable symbols."""
    if line not in twin.engine.workers:
        raise HTTPException(404, f"this twin does not serve line {line!r}; it serves {twin.engine.lines}")
    described = twin.description.model_dump()
    for step in described["steps"]:
        for signal in step["signals"]:
            signal["symbol"] = units.symbol(signal["unit"])
    return LineDescriptionOut.model_validate({**described, "line": line})
