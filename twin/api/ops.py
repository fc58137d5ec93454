"""Health and Prometheus metrics."""

from __future__ import annotations

import time

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from twin.api.deps import TwinDep
from twin.api.schemas import Health

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "degraded"}})
async def health(twin: TwinDep) -> Response:
    """200 when the twin reads its bus and InfluxDB takes its points; 503 (degraded) while the broker is
    away or the database is (its points wait in the spool), or a restarted line is still replaying what
    it missed, so a monitor or orchestrator sees it."""
    engine = twin.engine
    spooled = len(engine.writer.spool) if engine.writer is not None else 0
    reasons = [
        *([] if engine.connected else ["MQTT broker not connected"]),
        *([f"InfluxDB not taking points: {spooled} batches spooled"] if spooled else []),
        *(
            f"line {w.line} replaying what it missed from InfluxDB"
            for w in engine.workers.values()
            if w.catching_up
        ),
    ]
    body = Health(
        status="degraded" if reasons else "ok",
        reasons=reasons,
        mqtt_connected=engine.connected,
        lines=engine.lines,
        influx_pending_points=engine.writer.pending if engine.writer is not None else 0,
        influx_spooled_batches=spooled,
        uptime_s=(time.time_ns() - engine.started_ns) / 1e9,
    )
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(twin: TwinDep) -> Response:
    return Response(generate_latest(twin.engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)
