"""Health and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from twin.api.deps import TwinDep
from twin.api.schemas import Health

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=Health)
async def health(twin: TwinDep) -> Health:
    engine = twin.engine
    return Health(
        status="ok" if engine.connected else "degraded",
        mqtt_connected=engine.connected,
        lines=engine.lines,
        influx_pending_points=engine.writer.pending if engine.writer is not None else 0,
        uptime_s=(time.time_ns() - engine.started_ns) / 1e9,
    )


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(twin: TwinDep) -> Response:
    return Response(generate_latest(twin.engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)
