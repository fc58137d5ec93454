"""Signal history, proxied from InfluxDB with bound parameters (names are validated and never spliced)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import HistoryPoint, Name, Problem, SignalHistory
from twin.influx import query

router = APIRouter(
    tags=["signals"],
    dependencies=[Depends(require_reader)],
    responses={401: {"model": Problem}, 422: {"model": Problem}},
)

MAX_NS = 2**63 - 1


@router.get(
    "/signals/{line}/{machine}/{signal}/history",
    response_model=SignalHistory,
    responses={503: {"model": Problem, "description": "InfluxDB unreachable"}},
)
async def history(
    twin: TwinDep,
    line: Name,
    machine: Name,
    signal: Name,
    kind: Annotated[
        Literal["predicted", "residual", "statistic", "threshold", "parameter"] | None,
        Query(description="a model output (measurement `model`); without it the measured values (`process`)"),
    ] = None,
    channel: Name | None = None,
    start_ns: Annotated[int, Query(ge=0, le=MAX_NS, description="from (source time, ns)")] = 0,
    end_ns: Annotated[int, Query(ge=0, le=MAX_NS, description="until (source time, ns)")] = MAX_NS,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> SignalHistory:
    """The latest ``limit`` points of a signal between ``start_ns`` and ``end_ns``, oldest first."""
    measurement: Literal["process", "model"] = "process" if kind is None else "model"
    bind: dict[str, str] = {"line": line, "machine": machine, "signal": signal}
    where = '"line" = $line AND "machine" = $machine AND "signal" = $signal'
    if channel is not None:
        where += ' AND "channel" = $channel'
        bind["channel"] = channel
    if kind is not None:
        where += ' AND "kind" = $kind'
        bind["kind"] = kind
    fields = '"value", "sigma"' if measurement == "model" else '"value"'
    influxql = (
        f'SELECT {fields} FROM "{measurement}" WHERE {where} AND time >= {start_ns:d} AND time <= {end_ns:d}'
        f" ORDER BY time DESC LIMIT {limit:d}"
    )
    series = await query(twin.settings.influx, influxql, bind)
    points: list[HistoryPoint] = []
    for serie in series:
        columns = serie["columns"]
        for row in serie["values"]:
            record = dict(zip(columns, row, strict=False))
            points.append(
                HistoryPoint(time_ns=record["time"], value=record.get("value"), sigma=record.get("sigma"))
            )
    points.sort(key=lambda p: p.time_ns)
    return SignalHistory(
        line=line, machine=machine, signal=signal, measurement=measurement, kind=kind, points=points
    )
