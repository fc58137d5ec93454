"""The whole loop for tests and benchmarks: simulator and connectors in child processes, the twin here.

Each child is a ``multiprocessing`` spawn process running the real ``plant.runtime.run_plant`` or
``connectors.service.IngestService``, so the three parts use separate cores like in production, and a
benchmark can hand the simulator a scenario of its own. SIGTERM stops a child cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import uvicorn

from core.localservices import free_port
from core.settings import Settings
from plant.scenarios import Scenario
from twin.api.deps import Twin
from twin.engine import TwinEngine
from twin.ports import Analyser, WhatIf
from twin.service import build_twin, server

_SPAWN = multiprocessing.get_context("spawn")


def pipeline_settings(
    mqtt_port: int,
    influx_url: str,
    workdir: Path,
    *,
    scenario: str = "nominal",
    speed: float = 60.0,
    tick_s: float = 1.0,
    cycler_channels: int = 4,
    api_token: str | None = None,
) -> Settings:
    """Settings for one isolated pipeline: its own line name, ports, files and MQTT client ids."""
    tag = uuid.uuid4().hex[:8]
    opcua = f"opc.tcp://127.0.0.1:{free_port()}/linetwin"
    return Settings.model_validate(
        {
            "line": f"line{tag}",
            "mqtt": {"port": mqtt_port, "client_id_prefix": f"lt{tag}"},
            "influx": {"url": influx_url, "spool_dir": str(workdir / "spool"), "flush_interval_ms": 100},
            "plant": {
                "opcua_endpoint": opcua,
                "scenario": scenario,
                "speed": speed,
                "tick_s": tick_s,
                "cycler_channels": cycler_channels,
                "ground_truth_file": str(workdir / "ground_truth.jsonl"),
            },
            "opcua": {"endpoints": [opcua], "publishing_interval_ms": 20.0},
            "ingest": {"metrics_port": None},
            "twin": {"port": free_port(), "state_file": str(workdir / "twin.sqlite"), "api_token": api_token},
        }
    )


def _stop_with_parent(stop: asyncio.Event) -> None:
    """A child whose test or benchmark died (killed, timed out) stops instead of running on as an orphan:
    the parent's sentinel becomes readable when the parent exits."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        asyncio.get_running_loop().add_reader(parent.sentinel, stop.set)


def _run_plant(settings: Settings, scenario: Scenario | None, started: Any) -> None:
    from plant.runtime import Plant, run_plant
    from plant.scenarios import SCENARIOS

    if scenario is not None:
        SCENARIOS[scenario.name] = scenario

    async def main() -> None:
        plant = Plant(settings, asyncio.Event(), asyncio.Event())
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, plant.stop.set)
        _stop_with_parent(plant.stop)
        task = asyncio.create_task(run_plant(plant))
        await plant.ready.wait()
        assert plant.start is not None
        started.put(plant.start.timestamp())
        await task

    asyncio.run(main())


def _run_ingest(settings: Settings) -> None:
    from connectors.service import IngestService

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        _stop_with_parent(stop)
        await IngestService(settings).run(stop)

    asyncio.run(main())


@dataclass
class Upstream:
    """The running simulator and connectors; ``plant_start`` is plant time zero as a wall-clock epoch."""

    plant: BaseProcess
    ingest: BaseProcess
    plant_start: float


@contextlib.contextmanager
def upstream(settings: Settings, scenario: Scenario | None = None) -> Iterator[Upstream]:
    """Start connectors, then the simulator (so no early sample is missed); stop both on exit."""
    started = _SPAWN.Queue()
    ingest = _SPAWN.Process(target=_run_ingest, args=(settings,), daemon=True)
    ingest.start()
    plant = _SPAWN.Process(target=_run_plant, args=(settings, scenario, started), daemon=True)
    plant.start()
    try:
        yield Upstream(plant, ingest, started.get(timeout=60))
    finally:
        for child in (plant, ingest):
            if child.is_alive():
                child.terminate()
            child.join(15)
            if child.is_alive():
                child.kill()
                child.join()


@contextlib.asynccontextmanager
async def running_twin(
    settings: Settings,
    analyser_factory: Callable[[str], Analyser] | None = None,
    whatif: Callable[[TwinEngine], WhatIf] | None = None,
) -> AsyncIterator[Twin]:
    """The twin service on ``settings.twin.port`` (real models unless told otherwise) until exit."""
    from twin.modeladapter import analyser_factory as default_factory
    from twin.modeladapter import whatif_models

    twin = build_twin(
        settings,
        analyser_factory or default_factory(settings),
        whatif if whatif is not None else whatif_models(settings),
    )
    http: uvicorn.Server = server(twin)
    task = asyncio.create_task(http.serve())
    while not http.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield twin
    finally:
        http.should_exit = True
        await task


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="lt-pipeline-"))
