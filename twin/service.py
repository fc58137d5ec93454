"""Assemble and run the twin service: state file, engine, models, API, served by uvicorn."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn

from core.settings import Settings
from twin.alerts import open_database
from twin.api.app import create_app
from twin.api.deps import Twin
from twin.engine import TwinEngine
from twin.ports import Analyser, WhatIf

log = logging.getLogger(__name__)


def build_twin(
    settings: Settings,
    analyser_factory: Callable[[str], Analyser],
    whatif: Callable[[TwinEngine], WhatIf] | None,
    *,
    influx_enabled: bool = True,
) -> Twin:
    engine = TwinEngine(
        settings, analyser_factory, open_database(settings.twin.state_file), influx_enabled=influx_enabled
    )
    tokens = settings.twin.api_token is not None or bool(settings.twin.tokens)
    if not tokens and settings.twin.insecure:
        log.warning("insecure: no API token, anyone who reaches the API can change alerts and setpoints")
    elif not tokens:
        log.warning("no API token (twin.tokens, twin.api_token): every change is refused, reads are open")
    return Twin(
        settings=settings,
        engine=engine,
        whatif=whatif(engine) if whatif is not None else None,
    )


def server(twin: Twin) -> uvicorn.Server:
    """A uvicorn server for the twin's app (started with ``await server.serve()``)."""
    app = create_app(twin)
    config = uvicorn.Config(
        app,
        host=twin.settings.twin.host,
        port=twin.settings.twin.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


def serve(twin: Twin) -> None:
    """Run until Ctrl-C."""
    asyncio.run(server(twin).serve())
