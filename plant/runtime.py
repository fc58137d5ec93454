"""The live plant: ticks the line on plant time and publishes it on OPC UA and MQTT.

Plant time starts at the wall-clock start and runs ``speed`` times faster. The loop sleeps until each
tick's wall-clock due time and never sleeps when it is behind, so a slow moment delays publication but
never skips or reorders plant time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry

from core import health, linedesc
from core.errors import LinetwinError
from core.settings import Settings
from plant import described
from plant.cyclers import JsonCyclers, Naming, SparkplugCyclers, epoch_ms, naming
from plant.formation import Cell, OcvReading, sample
from plant.line import PilotLine, Tick
from plant.opcua_security import ServerSecurity
from plant.opcua_server import PlantOpcUaServer
from plant.scenarios import get_scenario

log = logging.getLogger(__name__)


class PlantUnavailable(LinetwinError):
    """The plant cannot open its OPC UA endpoint (address in use, bad endpoint)."""


@dataclass
class Plant:
    """A running plant; ``ready`` is set once both servers accept clients, ``stop`` ends it."""

    settings: Settings
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    run_id: str = ""
    start: datetime | None = None


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Plant]:
    """Start the plant as a task, yield it once it serves, stop it cleanly on exit.

    A start-up failure (port taken, broker unreachable) is raised here, not left in the task.
    """
    plant = Plant(settings)
    task = asyncio.create_task(run_plant(plant))
    ready = asyncio.create_task(plant.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not plant.ready.is_set():
        ready.cancel()
        await task
    try:
        yield plant
    finally:
        plant.stop.set()
        await task


def _open_ground_truth(settings: Settings) -> TextIO:
    path = settings.plant.ground_truth_file
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8")


def _serve_health(plant: Plant, links: list[Any]) -> WSGIServer | None:
    """``/health`` on ``plant.health_port``: degraded while a cycler link has no broker."""
    port = plant.settings.plant.health_port
    if port is None:
        return None

    def check() -> tuple[str, dict[str, Any]]:
        reasons = [] if all(link.connected.is_set() for link in links) else ["MQTT broker not connected"]
        details = {"reasons": reasons, "run": plant.run_id, "scenario": plant.settings.plant.scenario}
        return ("degraded" if reasons else "ok"), details

    return health.serve(port, CollectorRegistry(), check)


async def run_plant(plant: Plant) -> None:
    """Run until ``plant.stop`` is set or ``plant.duration_s`` of plant time has passed.

    The pilot line unless ``line_description`` names a line of one simulator's kinds under its own names
    (``plant.described``).
    """
    settings = plant.settings
    if settings.line_description is not None:
        description = linedesc.load(settings.line_description)
        if not described.is_pilot(description):
            if not described.simulates(description):
                raise PlantUnavailable(
                    f"no simulator runs {settings.line_description}: a described line needs steps of one "
                    f"simulator's kinds ({', '.join(described.KINDS)}; see plant.described)"
                )
            cfg = settings.plant
            simulated = described.DescribedLine(
                description, cfg.scenario, cfg.seed, cfg.cycler_channels, cfg.realistic
            )
            await _run_described(plant, simulated)
            return
    cfg = settings.plant
    line = PilotLine(get_scenario(cfg.scenario), cfg.seed, cfg.cycler_channels, cfg.realistic)
    plant.run_id = uuid.uuid4().hex[:12]
    opcua = PlantOpcUaServer(cfg.opcua_endpoint, line, ServerSecurity.of(settings), cfg.opcua_history_s)
    names = naming(linedesc.load(), next(s.id for s in linedesc.load().steps if s.kind == "formation"))
    cyclers = _cyclers(settings, plant.run_id, line.cyclers.channels, names)
    try:
        await opcua.start()
    except OSError as exc:
        raise PlantUnavailable(f"cannot serve OPC UA at {cfg.opcua_endpoint}: {exc}") from None
    try:
        await asyncio.to_thread(cyclers.connect)
        wall0 = time.monotonic()
        start = datetime.now(UTC)
        plant.start = start
        noise = np.random.default_rng([cfg.seed, 2])
        sample_every = 1.0 / cfg.cycler_rate_hz
        next_sample = sample_every
        truth = _open_ground_truth(settings)
        log.info("plant running", extra={"scenario": cfg.scenario, "seed": cfg.seed, "run": plant.run_id})
        plant.ready.set()
        http = _serve_health(plant, [cyclers.link])
        try:
            while await _due(plant, line.t + cfg.tick_s, wall0):
                tick = line.step(cfg.tick_s)
                when = start + timedelta(seconds=tick.t)
                await opcua.publish(tick, when)
                cyclers.birth_if_needed(epoch_ms(when))
                while next_sample <= tick.t + 1e-9:
                    _publish_samples(line, next_sample, start, cyclers, noise)
                    next_sample += sample_every
                _publish_events(tick, start, cyclers, truth, cfg.scenario)
        finally:
            if http is not None:
                await asyncio.to_thread(http.shutdown)
                http.server_close()
            truth.close()
            cyclers.close(epoch_ms(start + timedelta(seconds=line.t)))
            wall_s = time.monotonic() - wall0
            log.info(
                "plant stopped",
                extra={
                    "plant_seconds": line.t,
                    "wall_seconds": round(wall_s, 2),
                    "speed": round(line.t / wall_s, 1),
                },
            )
    finally:
        await opcua.stop()
        plant.finished.set()


def _cyclers(
    settings: Settings, run: str, channels: list[str], names: Naming
) -> JsonCyclers | SparkplugCyclers:
    kind = SparkplugCyclers if settings.plant.payload == "sparkplug" else JsonCyclers
    return kind(settings, run, channels, names)


async def _due(plant: Plant, t_next: float, wall0: float) -> bool:
    """Wait until plant time ``t_next`` is due on the wall clock (never when behind); False once the
    plant is to stop: stopped, or past ``plant.duration_s``."""
    cfg = plant.settings.plant
    if plant.stop.is_set() or (cfg.duration_s is not None and t_next > cfg.duration_s + 1e-9):
        return False
    delay = wall0 + t_next / cfg.speed - time.monotonic()
    if delay <= 0:
        await asyncio.sleep(0)
        return True
    try:
        await asyncio.wait_for(plant.stop.wait(), delay)
    except TimeoutError:
        return True
    return False


async def _run_described(plant: Plant, line: described.DescribedLine) -> None:
    """The plant loop of a described line: its steps on OPC UA, its cyclers (if it forms cells) on MQTT."""
    settings = plant.settings
    cfg = settings.plant
    plant.run_id = uuid.uuid4().hex[:12]
    opcua = described.DescribedOpcUaServer(
        cfg.opcua_endpoint, line, ServerSecurity.of(settings), cfg.opcua_history_s
    )
    cyclers = None
    if line.cells is not None:
        cells, names = line.cells
        cyclers = _cyclers(settings, plant.run_id, cells.cyclers.channels, names)
    try:
        await opcua.start()
    except OSError as exc:
        raise PlantUnavailable(f"cannot serve OPC UA at {cfg.opcua_endpoint}: {exc}") from None
    try:
        if cyclers is not None:
            await asyncio.to_thread(cyclers.connect)
        wall0 = time.monotonic()
        start = datetime.now(UTC)
        plant.start = start
        noise = np.random.default_rng([cfg.seed, 2])
        sample_every = 1.0 / cfg.cycler_rate_hz
        next_sample = sample_every
        truth = _open_ground_truth(settings)
        log.info(
            "plant running",
            extra={"line": line.description.line, "scenario": cfg.scenario, "run": plant.run_id},
        )
        plant.ready.set()
        http = _serve_health(plant, [cyclers.link] if cyclers is not None else [])
        try:
            while await _due(plant, line.t + cfg.tick_s, wall0):
                tick = line.step(cfg.tick_s)
                when = start + timedelta(seconds=tick.t)
                await opcua.publish(tick, when)
                if cyclers is not None and line.cells is not None:
                    cyclers.birth_if_needed(epoch_ms(when))
                    while next_sample <= tick.t + 1e-9:
                        _publish_samples(line.cells[0], next_sample, start, cyclers, noise)
                        next_sample += sample_every
                    _publish_cells(tick.t, tick.formed, tick.ocv, start, cyclers)
                for onset in tick.onsets:
                    truth.write(json.dumps(line.ground_truth(onset, start)) + "\n")
                    truth.flush()
                    fault = onset[1]
                    log.warning("scenario fault onset", extra={"fault": fault.name, "machine": fault.machine})
        finally:
            if http is not None:
                await asyncio.to_thread(http.shutdown)
                http.server_close()
            truth.close()
            if cyclers is not None:
                cyclers.close(epoch_ms(start + timedelta(seconds=line.t)))
    finally:
        await opcua.stop()
        plant.finished.set()


def _publish_samples(
    line: PilotLine,
    t: float,
    start: datetime,
    cyclers: JsonCyclers | SparkplugCyclers,
    noise: np.random.Generator,
) -> None:
    """One reading of every busy channel at plant time ``t``."""
    ts = epoch_ms(start + timedelta(seconds=t))
    for channel, cell in line.cyclers.cells.items():
        if cell is not None:
            cyclers.sample(channel, ts, sample(cell, t, noise))


def _publish_cells(
    t: float,
    formed: list[Cell],
    ocv: list[OcvReading],
    start: datetime,
    cyclers: JsonCyclers | SparkplugCyclers,
) -> None:
    """The results of the cells formed by plant time ``t``, and the OCV readings of aging cells."""
    for cell in formed:
        cyclers.result(
            cell,
            epoch_ms(start + timedelta(seconds=t)),
            epoch_ms(start + timedelta(seconds=cell.start_s)),
            epoch_ms(start + timedelta(seconds=cell.end_s)),
        )
    for reading in ocv:
        cyclers.ocv(reading, epoch_ms(start + timedelta(seconds=reading.time_s)))


def _publish_events(
    tick: Tick, start: datetime, cyclers: JsonCyclers | SparkplugCyclers, truth: TextIO, scenario: str
) -> None:
    _publish_cells(tick.t, tick.formed, tick.ocv, start, cyclers)
    for fault in tick.onsets:
        truth.write(json.dumps(fault.ground_truth(scenario, start)) + "\n")
        truth.flush()
        log.warning("scenario fault onset", extra={"fault": fault.name, "machine": fault.machine})
