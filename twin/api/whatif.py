"""What-if for process engineers: setpoints -> predicted quality, and the inverse (target -> setpoints)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from core import units
from core.prediction import Answer, Prediction
from twin.api.deps import Twin, TwinDep, authenticated, require, require_reader
from twin.api.schemas import (
    InputOut,
    InverseRequest,
    InverseResponse,
    Name,
    PredictionOut,
    Problem,
    PushResult,
    QuantityOut,
    SetpointPush,
    UnavailableOut,
    WhatIfCatalogue,
    WhatIfRequest,
    WhatIfResponse,
)
from twin.ports import WhatIf, WhatIfUnavailable
from twin.setpoints import SetpointRefused, push_setpoints, setpoint_nodes

router = APIRouter(
    prefix="/whatif",
    tags=["whatif"],
    dependencies=[Depends(require_reader)],
    responses={
        401: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem},
        422: {"model": Problem},
    },
)


def _models(twin: Twin) -> WhatIf:
    if twin.whatif is None:
        raise WhatIfUnavailable("this twin runs without what-if models")
    return twin.whatif


def _line(twin: Twin, line: str | None) -> str:
    if line is None:
        return twin.engine.lines[0]
    if line not in twin.engine.workers:
        raise HTTPException(404, f"this twin does not serve line {line!r}; it serves {twin.engine.lines}")
    return line


def _out(p: Prediction) -> PredictionOut:
    within = None
    if p.lower_spec is not None or p.upper_spec is not None:
        within = (p.lower_spec is None or p.value >= p.lower_spec) and (
            p.upper_spec is None or p.value <= p.upper_spec
        )
    return PredictionOut(
        quantity=p.quantity,
        value=p.value,
        sigma=p.sigma,
        sigma_model=p.sigma_model,
        sigma_noise=p.sigma_noise,
        interval_low=p.interval[0],
        interval_high=p.interval[1],
        extrapolated=list(p.extrapolated),
        unit=p.unit,
        lower_spec=p.lower_spec,
        upper_spec=p.upper_spec,
        within_spec=within,
    )


def _answer(answer: Answer) -> tuple[list[PredictionOut], list[UnavailableOut]]:
    return [_out(p) for p in answer.predictions], [
        UnavailableOut(quantity=u.quantity, reason=u.reason) for u in answer.unavailable
    ]


@router.get("/inputs", response_model=WhatIfCatalogue)
async def catalogue(twin: TwinDep, line: Name | None = None) -> WhatIfCatalogue:
    """What the line's what-if takes (inputs, their units, setpoint limits and current values) and what it
    predicts (quantities, units, spec limits): from the step models its description names."""
    line = _line(twin, line)
    found = _models(twin).catalogue(line)
    return WhatIfCatalogue(
        line=line,
        inputs=[
            InputOut(
                name=i.name,
                machine=i.machine,
                signal=i.signal,
                unit=i.unit,
                symbol=units.symbol(i.unit) if i.unit else "",
                setpoint=i.setpoint,
                low=i.low,
                high=i.high,
                current=i.current,
            )
            for i in found.inputs
        ],
        quantities=[
            QuantityOut(
                name=q.name,
                machine=q.machine,
                signal=q.signal,
                unit=q.unit,
                symbol=units.symbol(q.unit) if q.unit else "",
                lower_spec=q.lower_spec,
                upper_spec=q.upper_spec,
            )
            for q in found.quantities
        ],
    )


@router.post("", response_model=WhatIfResponse)
async def predict(
    twin: TwinDep, body: WhatIfRequest, scopes: Annotated[frozenset[str], Depends(authenticated)]
) -> WhatIfResponse:
    """Predicted loading, thickness, porosity and cell capacity with uncertainty for these setpoints; what
    cannot be predicted yet is listed under ``unavailable`` with its reason."""
    if body.save and "whatif" not in scopes:
        raise HTTPException(
            401,
            "saving a what-if run needs the API token (scope whatif)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    line = _line(twin, body.line)
    setpoints = body.setpoints
    models = _models(twin)
    models.catalogue(line).check(setpoints)
    predictions, unavailable = _answer(models.predict(line, setpoints))
    response = WhatIfResponse(
        line=line, setpoints=setpoints, predictions=predictions, unavailable=unavailable
    )
    if body.save:
        response.saved_id = twin.engine.state.save_whatif(body.model_dump_json(), response.model_dump_json())
    return response


@router.post("/inverse", response_model=InverseResponse)
async def inverse(twin: TwinDep, body: InverseRequest) -> InverseResponse:
    """The setpoints (within ``bounds``) whose predicted quality comes closest to ``targets``."""
    targets = body.targets
    line = _line(twin, body.line)
    models = _models(twin)
    known = models.catalogue(line)
    known.check_quantities(list(targets))
    unknown = sorted(set(body.bounds) - {i.name for i in known.inputs})
    if unknown:
        raise HTTPException(422, f"unknown setpoint(s) in bounds: {', '.join(unknown)}")
    setpoints = models.inverse(line, targets, {name: b.interval() for name, b in body.bounds.items()})
    predictions, unavailable = _answer(models.predict(line, setpoints))
    return InverseResponse(line=line, setpoints=setpoints, predictions=predictions, unavailable=unavailable)


@router.post(
    "/push",
    response_model=PushResult,
    dependencies=[Depends(require("push"))],
    responses={403: {"model": Problem}, 502: {"model": Problem, "description": "the plant refused"}},
)
async def push(twin: TwinDep, body: SetpointPush) -> PushResult:
    """Write approved setpoints to the simulated plant over OPC UA (off unless configured)."""
    if not twin.settings.twin.allow_setpoint_push:
        raise HTTPException(403, "setpoint push is off: set twin.allow_setpoint_push to allow it")
    setpoints = body.setpoints
    if not setpoints:
        raise HTTPException(422, "give at least one setpoint")
    try:
        setpoint_nodes(twin.description, setpoints)  # names and limits from the line description
    except SetpointRefused as exc:
        raise HTTPException(422, str(exc)) from None
    endpoint = twin.settings.plant.opcua_endpoint
    await push_setpoints(endpoint, setpoints, body.by, twin.description, twin.settings.opcua)
    return PushResult(pushed=setpoints, by=body.by, endpoint=endpoint)
