"""The line as its description says (steps in material-flow order, their signals, units and limits), and
the figures its alarm system is judged by."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from core import units
from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import AlarmRatesOut, LineDescriptionOut, Name, Problem

router = APIRouter(
    tags=["lines"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)


def _served(twin: TwinDep, line: str) -> None:
    if line not in twin.engine.workers:
        raise HTTPException(404, f"this twin does not serve line {line!r}; it serves {twin.engine.lines}")


@router.get("/lines/{line}/description", response_model=LineDescriptionOut)
async def description(twin: TwinDep, line: Name) -> LineDescriptionOut:
    """The line description this twin serves the line with (``line_description``), units as UCUM codes
    and as readable symbols."""
    _served(twin, line)
    described = twin.description.model_dump()
    for step in described["steps"]:
        for signal in step["signals"]:
            signal["symbol"] = units.symbol(signal["unit"])
    return LineDescriptionOut.model_validate({**described, "line": line})


@router.get("/lines/{line}/alarm-rates", response_model=AlarmRatesOut)
async def alarm_rates(
    twin: TwinDep,
    line: Name,
    hours: Annotated[float, Query(gt=0, le=24 * 366, description="window, back from now")] = 24.0,
) -> AlarmRatesOut:
    """Alarms per 10 minutes, the peak, floods (> 10 in 10 minutes), standing and stale alarms, and the
    conditions that chatter (raised 3 times within a minute), as EEMUA 191 and ISA-18.2 count them."""
    _served(twin, line)
    return AlarmRatesOut(line=line, **asdict(twin.engine.alarm_rates(line, hours * 3600.0)))
