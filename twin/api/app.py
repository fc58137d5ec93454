"""The FastAPI application: routers by resource, errors as 4xx with a message, the UI at ``/``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from twin.alerts import AlertConflict, AlertNotFound
from twin.api import (
    alerts,
    genealogy,
    lines,
    models,
    ops,
    passport,
    signals,
    state,
    stream,
    whatif,
    whatifschema,
)
from twin.api.deps import Twin
from twin.api.schemas import Problem
from twin.influx import InfluxUnavailable
from twin.ports import WhatIfUnavailable
from twin.setpoints import SetpointRefused

log = logging.getLogger(__name__)

TOKEN_OPTIONAL = {"/whatif", "/whatif/inverse"}
"""Operations open to readers: the token is needed only for what they may do (a saved what-if run)."""


def create_app(twin: Twin, *, run_engine: bool = True) -> FastAPI:
    """The API around ``twin``; with ``run_engine`` the app's lifespan starts and stops the engine."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if run_engine:
            await twin.engine.start()
        try:
            yield
        finally:
            if run_engine:
                await twin.engine.stop()

    app = FastAPI(
        title="linetwin twin service",
        version="0.1.0",
        description="Live state, ISA-18.2 alerts, genealogy and what-if for a Li-ion pilot line.",
        lifespan=lifespan,
        responses={400: {"model": Problem, "description": "the request body is not JSON"}},
    )
    app.state.twin = twin
    for module in (state, lines, alerts, signals, models, genealogy, passport, stream, whatif, ops):
        app.include_router(module.router)
    _errors(app)
    _document(app, twin)

    page = resources.files("twin.ui").joinpath("index.html").read_text()

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def ui() -> HTMLResponse:
        return HTMLResponse(page)

    return app


def _document(app: FastAPI, twin: Twin) -> None:
    """Make the OpenAPI schema say what the app does.

    422 bodies are ``{"detail": message}`` like every other error; when reads are open without the
    token, GET operations list "no security" as an alternative to the bearer token; and the what-if
    requests name the served lines' inputs and quantities (``twin.api.whatifschema``).
    """
    optional_read_auth = twin.settings.twin.read_only_without_token

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in components:
                components["HTTPValidationError"] = Problem.model_json_schema()
                components.pop("ValidationError", None)
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    open_read = optional_read_auth and method == "get"
                    if operation.get("security") and (open_read or path in TOKEN_OPTIONAL):
                        operation["security"] = [{}, *operation["security"]]
            if twin.whatif is not None:
                catalogues = []
                for line in twin.engine.lines:
                    try:
                        catalogues.append(twin.whatif.catalogue(line))
                    except WhatIfUnavailable:
                        continue
                whatifschema.document(schema, catalogues)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _errors(app: FastAPI) -> None:
    """Every failure a client can cause is a 4xx with ``{"detail": message}``; never a traceback."""

    def detail(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handler(_r: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"detail": str(exc)}, status_code=status)

        return handler

    for error, status in (
        (AlertNotFound, 404),
        (AlertConflict, 409),
        (WhatIfUnavailable, 409),
        (SetpointRefused, 502),
        (InfluxUnavailable, 503),
    ):
        app.add_exception_handler(error, detail(status))

    @app.exception_handler(RequestValidationError)
    async def invalid(_r: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        return JSONResponse({"detail": problems or "invalid request"}, status_code=422)

    @app.exception_handler(ValueError)
    async def bad_value(_r: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)
