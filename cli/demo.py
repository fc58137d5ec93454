"""``twin demo``: the whole loop in one command on a bare machine.

Simulator (drifting scenario, sped up) -> connectors -> plant bus -> twin -> API and UI. Brokers and
databases are found or started in this order: the configured ones when they answer, local Mosquitto and
influxd when installed (core/localservices.py), and otherwise an embedded MQTT broker (amqtt) with
InfluxDB left out (the twin, its alerts and the UI work without it; history and Grafana charts do not).
The simulator and the connectors run as ``twin sim`` and ``twin ingest`` child processes, so they use
the other core and their logs go to files; the twin runs in this process. Between them OPC UA runs with
security None, set here explicitly: the demo is the one place linetwin's insecure defaults are allowed
(loopback, the user's own machine, and the API open without a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cli.context import run_guarded, settings_from
from core.errors import LinetwinError
from core.localservices import (
    LocalService,
    ServiceError,
    free_port,
    http_answers,
    port_open,
    start_influxd,
    start_mosquitto,
)
from core.settings import Settings

console = Console()

DEMO_SCENARIO = "pump-wear"
DEMO_SPEED = 300.0
DEMO_TICK_S = 2.0
DEMO_CYCLER_CHANNELS = 4


class DemoError(LinetwinError):
    """A part of the demo did not start."""


@dataclass
class Stack:
    """What the demo started (to stop it again) and where everything is."""

    settings: Settings
    workdir: Path
    influx: bool
    notes: list[str] = field(default_factory=list)
    services: list[LocalService] = field(default_factory=list)
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def embedded_broker(port: int) -> AsyncIterator[None]:
    """amqtt on loopback, anonymous: the last resort when no Mosquitto is installed."""
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield
    finally:
        await broker.shutdown()


@contextlib.asynccontextmanager
async def demo_stack(base: Settings, scenario: str, speed: float, port: int | None) -> AsyncIterator[Stack]:
    """Find or start MQTT and InfluxDB, then start ``twin sim`` and ``twin ingest`` against them."""
    workdir = Path(tempfile.mkdtemp(prefix="lt-demo-"))
    # Own MQTT client ids, so a demo never takes over the sessions of another twin on a shared broker.
    changes: dict[str, dict[str, Any]] = {
        "mqtt": {"client_id_prefix": f"linetwin-demo{os.getpid()}"},
        "influx": {},
    }
    stack = Stack(settings=base, workdir=workdir, influx=True)
    async with contextlib.AsyncExitStack() as exits:
        exits.callback(shutil.rmtree, workdir, True)
        exits.callback(_stop, stack)
        mqtt = base.mqtt
        if port_open(mqtt.host, mqtt.port):
            stack.notes.append(f"MQTT: using the broker at {mqtt.host}:{mqtt.port}")
        else:
            try:
                broker = start_mosquitto()
                stack.services.append(broker)
                changes["mqtt"] |= {"host": broker.host, "port": broker.port}
                stack.notes.append(f"MQTT: started Mosquitto on port {broker.port}")
            except ServiceError:
                broker_port = free_port()
                await exits.enter_async_context(embedded_broker(broker_port))
                changes["mqtt"] |= {"host": "127.0.0.1", "port": broker_port}
                stack.notes.append(f"MQTT: Mosquitto not installed; embedded broker on port {broker_port}")
        if http_answers(f"{base.influx.url}/ping", 204):
            stack.notes.append(f"InfluxDB: using {base.influx.url}")
        else:
            try:
                influxd = start_influxd()
                stack.services.append(influxd)
                changes["influx"]["url"] = influxd.url
                stack.notes.append(f"InfluxDB: started influxd at {influxd.url}")
            except ServiceError:
                stack.influx = False
                stack.notes.append(
                    "InfluxDB: not installed; running without it (live state, alerts and what-if work; "
                    "history and Grafana charts do not)"
                )
        opcua = f"opc.tcp://127.0.0.1:{free_port()}/linetwin"
        twin_port = port or (base.twin.port if not port_open("127.0.0.1", base.twin.port) else free_port())
        changes["plant"] = {
            "opcua_endpoint": opcua,
            "scenario": scenario,
            "speed": speed,
            "tick_s": DEMO_TICK_S,
            "cycler_channels": DEMO_CYCLER_CHANNELS,
            "ground_truth_file": str(workdir / "ground_truth.jsonl"),
            # the one place OPC UA runs without security: simulator and ingest on the user's own loopback
            "opcua_security_modes": ["None"],
        }
        changes["opcua"] = {"endpoints": [opcua], "security_policy": "None", "security_mode": "None"}
        changes["influx"]["spool_dir"] = str(workdir / "spool")
        changes["ingest"] = {"metrics_port": free_port()}
        changes["twin"] = {
            "port": twin_port,
            "state_file": workdir / "twin.sqlite",
            "api_token": None,
            "insecure": True,  # the demo runs on the user's own machine, its UI acknowledges without a token
        }
        stack.settings = base.model_copy(
            update={name: getattr(base, name).model_copy(update=values) for name, values in changes.items()}
        )
        env = _child_env(changes, stack.influx)
        stack.children.append(_spawn(["sim"], env, workdir / "sim.log"))
        stack.children.append(_spawn(["ingest"], env, workdir / "ingest.log"))
        yield stack


def _child_env(changes: dict[str, dict[str, Any]], influx: bool) -> dict[str, str]:
    """Hand the demo's changes to the children as ``LINETWIN_*`` variables (on top of the user's config)."""
    env = dict(os.environ)
    for section, values in changes.items():
        for key, value in values.items():
            if value is not None:
                env[f"LINETWIN_{section.upper()}__{key.upper()}"] = (
                    json.dumps(value) if isinstance(value, list) else str(value)
                )
    if not influx:
        env["LINETWIN_INFLUX__URL"] = "http://127.0.0.1:9"  # nothing listens: the ingest spools to disk
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from cli.main import app; app()", *args]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(stack: Stack) -> None:
    for child in stack.children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for child in stack.children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    for service in stack.services:
        service.cleanup()


async def _run(base: Settings, scenario: str, speed: float, duration: float | None, port: int | None) -> None:
    from twin.modeladapter import analyser_factory, whatif_models
    from twin.service import build_twin, server

    started = time.monotonic()
    async with demo_stack(base, scenario, speed, port) as stack:
        settings = stack.settings
        for note in stack.notes:
            console.print(note)
        twin = build_twin(
            settings, analyser_factory(settings), whatif_models(settings), influx_enabled=stack.influx
        )
        uvicorn_server = server(twin)
        serving = asyncio.create_task(uvicorn_server.serve())
        url = f"http://{settings.twin.host}:{settings.twin.port}"
        console.print(f"[bold]twin UI:[/] {url}/   API: {url}/docs   metrics: {url}/metrics")
        console.print(f"scenario {scenario} at {speed:g}x; logs in {stack.workdir}; Ctrl-C stops")
        try:
            interrupted = await _watch(
                stack, twin.engine, started, duration, lambda: uvicorn_server.should_exit
            )
        finally:
            uvicorn_server.should_exit = True
            await serving
    if interrupted:
        # uvicorn took the Ctrl-C and shut down; the signal it raises again afterwards ends asyncio.run with
        # a KeyboardInterrupt only if it comes before this coroutine returns, so say it here in any case
        raise KeyboardInterrupt


async def _watch(
    stack: Stack, engine: Any, started: float, duration: float | None, stopping: Callable[[], bool]
) -> bool:
    """Print the first alert (and every new one), check the children, stop after ``duration`` or once
    the server is stopping (Ctrl-C reaches the children too: their exit then is no error); True when
    stopped by the server."""
    seen: set[int] = set()
    while duration is None or time.monotonic() - started < duration:
        await asyncio.sleep(0.2)
        if stopping():
            return True
        for child, name in zip(stack.children, ("sim", "ingest"), strict=True):
            if child.poll() is not None:
                raise DemoError(
                    f"twin {name} exited ({child.returncode}); see {stack.workdir / (name + '.log')}"
                )
        for alert in reversed(engine.alerts.find(limit=20)):
            if alert.id in seen:
                continue
            seen.add(alert.id)
            console.print(
                f"[bold red]alert[/] after {time.monotonic() - started:.1f} s: "
                + escape(f"{alert.title} [{alert.machine}/{alert.signal}, cause {alert.cause}] {alert.text}")
            )
    return False


def demo(
    ctx: typer.Context,
    duration: Annotated[float | None, typer.Option(help="stop by itself after this many seconds")] = None,
    scenario: Annotated[str, typer.Option(help="fault scenario of the simulator")] = DEMO_SCENARIO,
    speed: Annotated[float, typer.Option(help="plant seconds per wall-clock second")] = DEMO_SPEED,
    port: Annotated[int | None, typer.Option(help="port of the twin's UI and API")] = None,
) -> None:
    """Run simulator, connectors, twin and UI together; prints the URLs and the first alert."""
    settings = settings_from(ctx)
    run_guarded(lambda: asyncio.run(_run(settings, scenario, speed, duration, port)))
