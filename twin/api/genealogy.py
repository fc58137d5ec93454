"""Genealogy: a roll's steps and the cells built from it, and a cell back to its roll."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, HTTPException

from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import CellGenealogy, CellOut, Name, Problem, RollGenealogy, RollStep
from twin.store import StateStore

router = APIRouter(
    prefix="/genealogy",
    tags=["genealogy"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 404: {"model": Problem}},
)


def _roll(store: StateStore, roll_id: str) -> RollGenealogy | None:
    steps = store.roll(roll_id)
    cells = store.cells_of_roll(roll_id)
    if not steps and not cells:
        return None
    return RollGenealogy(
        roll_id=roll_id,
        steps=[
            RollStep(machine=s.machine, line=s.line, first_ns=s.first_ns, last_ns=s.last_ns) for s in steps
        ],
        cells=[CellOut(**asdict(c)) for c in cells],
    )


@router.get("/rolls/{roll_id}", response_model=RollGenealogy)
async def roll(twin: TwinDep, roll_id: Name) -> RollGenealogy:
    found = _roll(twin.engine.state, roll_id)
    if found is None:
        raise HTTPException(404, f"roll {roll_id!r} has not been seen")
    return found


@router.get("/cells/{cell_id}", response_model=CellGenealogy)
async def cell(twin: TwinDep, cell_id: Name) -> CellGenealogy:
    record = twin.engine.state.cell(cell_id)
    if record is None:
        raise HTTPException(404, f"cell {cell_id!r} has not been seen")
    parent = _roll(twin.engine.state, record.roll_id) if record.roll_id else None
    return CellGenealogy(cell=CellOut(**asdict(record)), roll=parent)
