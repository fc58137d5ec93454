"""Alerts: list and filter, acknowledge, shelve and unshelve, each recorded with who and when."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from twin.alerts import Alert, AlertState
from twin.api.deps import HolderDep, TwinDep, require_reader, require_writer, who
from twin.api.schemas import (
    AcknowledgeRequest,
    AlertDetail,
    AlertEventOut,
    AlertOut,
    Name,
    Problem,
    ShelveRequest,
    UnshelveRequest,
)
from twin.engine import alert_document

router = APIRouter(
    prefix="/alerts", tags=["alerts"], responses={401: {"model": Problem}, 404: {"model": Problem}}
)
AlertId = Annotated[int, Path(ge=1, le=2**62, description="alert id")]
WRITE: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 409: {"model": Problem}}


def _out(alert: Alert) -> AlertOut:
    return AlertOut(**alert_document(alert))


@router.get("", response_model=list[AlertOut], dependencies=[Depends(require_reader)])
async def list_alerts(
    twin: TwinDep,
    line: Name | None = None,
    machine: Name | None = None,
    state: Annotated[list[AlertState] | None, Query(description="ISA-18.2 states to include")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlertOut]:
    alerts = twin.engine.alerts.find(line=line, machine=machine, states=state, limit=limit)
    return [_out(a) for a in alerts]


@router.get("/{alert_id}", response_model=AlertDetail, dependencies=[Depends(require_reader)])
async def get_alert(twin: TwinDep, alert_id: AlertId) -> AlertDetail:
    alert = twin.engine.alerts.get(alert_id)
    events = [
        AlertEventOut(at_ns=e.at_ns, action=e.action, who=e.who, note=e.note)
        for e in twin.engine.alerts.events(alert_id)
    ]
    return AlertDetail(**alert_document(alert), events=events)


@router.post(
    "/{alert_id}/acknowledge",
    response_model=AlertOut,
    dependencies=[Depends(require_writer)],
    responses=WRITE,
)
async def acknowledge(
    twin: TwinDep, alert_id: AlertId, body: AcknowledgeRequest, holder: HolderDep
) -> AlertOut:
    return _out(twin.engine.acknowledge(alert_id, who(body.by, holder), body.note))


@router.post(
    "/{alert_id}/shelve", response_model=AlertOut, dependencies=[Depends(require_writer)], responses=WRITE
)
async def shelve(twin: TwinDep, alert_id: AlertId, body: ShelveRequest, holder: HolderDep) -> AlertOut:
    return _out(twin.engine.shelve(alert_id, who(body.by, holder), body.duration_s, body.note))


@router.post(
    "/{alert_id}/unshelve", response_model=AlertOut, dependencies=[Depends(require_writer)], responses=WRITE
)
async def unshelve(twin: TwinDep, alert_id: AlertId, body: UnshelveRequest, holder: HolderDep) -> AlertOut:
    return _out(twin.engine.unshelve(alert_id, who(body.by, holder)))
