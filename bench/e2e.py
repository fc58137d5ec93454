"""The whole loop for tests and ``twin bench e2e``: simulator and connectors in child processes, twin here.

Each child is a ``multiprocessing`` spawn process running the real ``plant.runtime.run_plant`` or
``connectors.service.IngestService``, so the three parts use separate cores like in production, and a
benchmark can hand the simulator a scenario of its own. SIGTERM stops a child cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import queue
import signal
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from core.localservices import free_ports, http_answers
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
    line_description: Path | None = None,
) -> Settings:
    """Settings for one isolated pipeline: its own line name, ports, files and MQTT client ids (site and
    area the description's, when one is given). OPC UA runs without security, set explicitly: the measured
    latencies are the data path's, and the secure path has its own tests
    (tests/integration/test_ingest_opcua_security.py)."""
    tag = uuid.uuid4().hex[:8]
    opcua_port, twin_port = free_ports(2)
    opcua = f"opc.tcp://127.0.0.1:{opcua_port}/linetwin"
    return Settings.model_validate(
        {
            "line": f"line{tag}",
            "line_description": line_description,
            "mqtt": {"port": mqtt_port, "client_id_prefix": f"lt{tag}"},
            "influx": {"url": influx_url, "spool_dir": str(workdir / "spool"), "flush_interval_ms": 100},
            "plant": {
                "opcua_endpoint": opcua,
                "scenario": scenario,
                "speed": speed,
                "tick_s": tick_s,
                "cycler_channels": cycler_channels,
                "ground_truth_file": str(workdir / "ground_truth.jsonl"),
                "opcua_security_modes": ["None"],
            },
            "opcua": {
                "endpoints": [opcua],
                "publishing_interval_ms": 20.0,
                "security_policy": "None",
                "security_mode": "None",
            },
            "ingest": {"metrics_port": None},
            "twin": {"port": twin_port, "state_file": str(workdir / "twin.sqlite"), "api_token": api_token},
        }
    )


def _stop_with_parent(stop: asyncio.Event) -> None:
    """A child whose test or benchmark died (killed, timed out) stops instead of running on as an orphan:
    the parent's sentinel becomes readable when the parent exits."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        asyncio.get_running_loop().add_reader(parent.sentinel, stop.set)


def _run_plant(settings: Settings, scenario: Scenario | None, started: Any) -> None:
    """Run the simulator; put plant time zero on ``started`` once it serves, or why it could not start."""
    from core.errors import LinetwinError
    from plant.runtime import running
    from plant.scenarios import SCENARIOS

    if scenario is not None:
        SCENARIOS[scenario.name] = scenario

    async def main() -> None:
        try:
            async with running(settings) as plant:
                asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, plant.stop.set)
                _stop_with_parent(plant.stop)
                assert plant.start is not None
                started.put(plant.start.timestamp())
                await plant.finished.wait()
        except LinetwinError as exc:
            started.put(str(exc))

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


def _stop(*children: BaseProcess) -> None:
    """SIGTERM (graceful), then SIGKILL for a child still alive after 15 s: stopping never hangs."""
    for child in children:
        if child.is_alive():
            child.terminate()
        child.join(15)
        if child.is_alive():
            child.kill()
            child.join()


def _plant_start(started: Any, plant: BaseProcess, ready_s: float) -> float:
    """Plant time zero once the simulator serves; a clear error if it cannot start or dies first."""
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        try:
            answer = started.get(timeout=0.5)
        except queue.Empty:
            if not plant.is_alive():
                raise RuntimeError(
                    f"the simulator exited before serving (exit code {plant.exitcode})"
                ) from None
            continue
        if isinstance(answer, str):
            raise RuntimeError(f"the simulator did not start: {answer}")
        return float(answer)
    raise RuntimeError(f"the simulator did not serve within {ready_s:.0f} s")


@contextlib.contextmanager
def upstream(
    settings: Settings, scenario: Scenario | None = None, ready_s: float = 120.0
) -> Iterator[Upstream]:
    """Start connectors, then the simulator (so no early sample is missed); stop both on exit."""
    with ingest_process(settings) as ingest, simulator(settings, scenario, ready_s) as (plant, start):
        yield Upstream(plant, ingest, start)


@contextlib.contextmanager
def ingest_process(settings: Settings) -> Iterator[BaseProcess]:
    """``twin ingest`` in a child process, stopped (SIGTERM, then SIGKILL) on exit."""
    ingest = _SPAWN.Process(target=_run_ingest, args=(settings,), daemon=True)
    ingest.start()
    try:
        yield ingest
    finally:
        _stop(ingest)


@contextlib.contextmanager
def simulator(
    settings: Settings, scenario: Scenario | None = None, ready_s: float = 120.0
) -> Iterator[tuple[BaseProcess, float]]:
    """``twin sim`` in a child process; yields it with plant time zero once it serves."""
    started = _SPAWN.Queue()
    plant = _SPAWN.Process(target=_run_plant, args=(settings, scenario, started), daemon=True)
    plant.start()
    try:
        yield plant, _plant_start(started, plant, ready_s)
    finally:
        _stop(plant)


def _run_twin(settings: Settings) -> None:
    from twin.modeladapter import analyser_factory, whatif_models

    async def main() -> None:
        http = server(build_twin(settings, analyser_factory(settings), whatif_models(settings)))
        stop = asyncio.Event()
        _stop_with_parent(stop)
        task = asyncio.create_task(http.serve())  # uvicorn itself stops on SIGTERM
        await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        http.should_exit = True
        await task

    asyncio.run(main())


@contextlib.contextmanager
def twin_process(settings: Settings, ready_s: float = 60.0) -> Iterator[BaseProcess]:
    """The twin service with its real models in a child process, as ``twin serve`` runs it: answering
    ``/health`` before this yields, stopped on exit without ever hanging the caller."""
    child = _SPAWN.Process(target=_run_twin, args=(settings,), daemon=True)
    child.start()
    try:
        deadline = time.monotonic() + ready_s
        while not http_answers(f"http://127.0.0.1:{settings.twin.port}/health", timeout=2.0):
            if not child.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the twin did not come up (exit code {child.exitcode})")
            time.sleep(0.1)
        yield child
    finally:
        _stop(child)


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


# --------------------------------------------------------------------------------------------------
# twin bench e2e: sensor change at the simulator -> alert in the API

STEP_MAGNITUDE = -0.2  # pump efficiency: delivered flow falls 20 %, far beyond noise: one-sample detection
STEP_HOLD_S = 20.0  # plant seconds the step lasts before the pump recovers
STEP_PERIOD_S = 90.0  # > hold + the adapter's quiet time (2 x memory), so each step re-raises the alert
BENCH_MEMORY_S = 30.0
BENCH_CALIBRATION_S = 300.0
MONITORED_BEFORE_S = 30.0  # plant seconds before the first step at which the model state is kept
GOAL_P99_MS = 250.0


def step_scenario(steps: int, first_s: float) -> Scenario:
    """Pump efficiency as a square wave: down by 20 % at each step onset, back after ``STEP_HOLD_S``."""
    from plant.scenarios import Fault

    faults = []
    for k in range(steps):
        onset = first_s + k * STEP_PERIOD_S
        for name, magnitude, at in (
            ("down", STEP_MAGNITUDE, onset),
            ("up", -STEP_MAGNITUDE, onset + STEP_HOLD_S),
        ):
            faults.append(
                Fault(
                    f"bench-step{k}-{name}",
                    "coater1",
                    "pump_efficiency",
                    magnitude,
                    "fraction",
                    at,
                    0.0,
                    ("coater1.pump_flow",),
                    "pump flow steps by 20 %",
                )
            )
    return Scenario("bench-e2e-steps", "pump flow steps for the latency benchmark", tuple(faults))


@dataclass
class LatencyResult:
    """Milliseconds from the tick after each step (the model judges a tick when the next one begins)
    to the alert event on the API's live stream."""

    latencies_ms: list[float]
    expected: int
    tick_ms: float


async def _listen(url: str, seen: list[tuple[float, dict[str, Any]]], ready: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=None) as client, client.stream("GET", f"{url}/stream") as response:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                ready.set()
            elif line.startswith("data:") and event == "alert":
                seen.append((time.time(), json.loads(line.removeprefix("data:"))))


async def _fresh_model_per_step(
    twin: Twin, line: str, plant_start: float, first_s: float, steps: int, speed: float
) -> None:
    """Between steps, close the alert and put the line model back to its just-calibrated state.

    The line model learns (its RLS tracks the pump) and suppresses repeats within its memory, so without
    this only the first step would raise an alert; each step is timed against the same fresh model.
    """
    engine = twin.engine
    worker = engine.workers[line]
    monitoring = plant_start + (first_s - MONITORED_BEFORE_S) / speed  # calibrated, re-baselined, judging
    await asyncio.sleep(max(0.0, monitoring - time.time()))
    calibrated = worker.analyser.snapshot()
    for k in range(steps):
        reset_at = plant_start + (first_s + k * STEP_PERIOD_S + STEP_PERIOD_S / 2) / speed
        await asyncio.sleep(max(0.0, reset_at - time.time()))
        for alert in engine.alerts.find(line=line, limit=50):
            if alert.condition_active:
                engine.clear_alert(alert.key)
            if not alert.acknowledged:
                engine.acknowledge(alert.id, "bench")
        worker.analyser.restore(calibrated)


async def measure_latency(mqtt_port: int, influx_url: str, steps: int, speed: float) -> LatencyResult:
    from models.line import LineModel
    from models.steps.base import Tuning
    from twin.modeladapter import LineModelAnalyser

    tick_s = 1.0
    files = tempfile.TemporaryDirectory(prefix="lt-bench-e2e-")
    settings = pipeline_settings(
        mqtt_port, influx_url, Path(files.name), scenario="bench-e2e-steps", speed=speed, tick_s=tick_s
    )
    # after calibration, a step model re-baselines its features from its first operating point's settled
    # data (settle_s, then rebase_s) and judges nothing meanwhile: the steps start once it monitors
    tuning = Tuning()
    first_s = max(BENCH_CALIBRATION_S, tuning.settle_s + tuning.rebase_s) + 120.0
    scenario = step_scenario(steps, first_s)

    def analyser(line: str) -> LineModelAnalyser:
        model = LineModel(line, calibration_s=BENCH_CALIBRATION_S, memory_s=BENCH_MEMORY_S, confirm_s=0.0)
        return LineModelAnalyser(line, model)

    seen: list[tuple[float, dict[str, Any]]] = []
    url = f"http://127.0.0.1:{settings.twin.port}"
    async with running_twin(settings, analyser) as twin:
        ready = asyncio.Event()
        listener = asyncio.create_task(_listen(url, seen, ready))
        await asyncio.wait_for(ready.wait(), 10)
        with upstream(settings, scenario) as parts:
            resets = asyncio.create_task(
                _fresh_model_per_step(twin, settings.line, parts.plant_start, first_s, steps, speed)
            )
            end_wall = parts.plant_start + (first_s + steps * STEP_PERIOD_S) / speed
            await asyncio.sleep(max(0.0, end_wall - time.time()) + 2.0)
            resets.cancel()
        listener.cancel()
    files.cleanup()
    raised = sorted(
        t for t, alert in seen if alert["cause"] == "pump_wear" and alert["state"] == "active_unacknowledged"
    )
    latencies = []
    for k in range(steps):
        judged = parts.plant_start + (first_s + k * STEP_PERIOD_S + tick_s) / speed
        after = [t for t in raised if judged - 1.0 < t < judged + STEP_PERIOD_S / 2 / speed]
        if after:
            latencies.append((after[0] - judged) * 1000)
    return LatencyResult(latencies, steps, tick_s / speed * 1000)


def e2e_command(
    steps: Annotated[int, typer.Option(min=5, help="sensor steps to time")] = 40,
    speed: Annotated[float, typer.Option(help="plant seconds per wall-clock second")] = 60.0,
) -> None:
    """Sensor change at the simulator -> alert in the API: p50/p99 beyond the sampling interval."""
    from core.localservices import start_influxd, start_mosquitto

    console = Console()
    services = [start_mosquitto(), start_influxd()]
    try:
        mqtt_port, influx_url = services[0].port, f"http://127.0.0.1:{services[1].port}"
        with console.status(f"{steps} pump-flow steps through simulator, connectors and twin"):
            result = asyncio.run(measure_latency(mqtt_port, influx_url, steps, speed))
    finally:
        for service in services:
            service.cleanup()
    values = np.array(result.latencies_ms)
    table = Table(title="sensor change -> alert in the API (ms beyond the sampling interval)")
    for column in ("alerts", "sampling interval", "p50", "p90", "p99", "max", "goal p99"):
        table.add_column(column, justify="right")
    if values.size == 0:
        console.print(f"[bold red]no alert for any of the {result.expected} steps[/]")
        raise typer.Exit(1)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    table.add_row(
        f"{values.size}/{result.expected}",
        f"{result.tick_ms:.1f}",
        f"{p50:.1f}",
        f"{p90:.1f}",
        f"{p99:.1f}",
        f"{values.max():.1f}",
        f"{GOAL_P99_MS:.0f} ({'met' if p99 <= GOAL_P99_MS else 'missed'})",
    )
    console.print(table)
