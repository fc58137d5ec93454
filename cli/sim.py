"""``twin sim``: run the simulated pilot line, list its scenarios, or record a run to files."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from cli.context import run_guarded, settings_from, user_errors
from core import linedesc
from core.settings import Settings

console = Console()


def sim(
    ctx: typer.Context,
    opcua_endpoint: Annotated[str | None, typer.Option(help="OPC UA endpoint to serve")] = None,
    mqtt_host: Annotated[str | None, typer.Option(help="MQTT broker host for the cyclers")] = None,
    mqtt_port: Annotated[int | None, typer.Option(help="MQTT broker port")] = None,
    scenario: Annotated[str | None, typer.Option(help="fault scenario (see --list-scenarios)")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed: same seed + scenario, same data")] = None,
    speed: Annotated[float | None, typer.Option(help="plant seconds per wall-clock second")] = None,
    payload: Annotated[str | None, typer.Option(help="cycler payloads: json or sparkplug")] = None,
    realistic: Annotated[
        bool | None,
        typer.Option(
            "--realistic/--clean",
            help="a real line's in-control disturbances (wander, lots, ambient, operator moves, sensor "
            "faults) or clean independent noise",
        ),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many plant seconds (--record: default 8 h)")
    ] = None,
    list_scenarios: Annotated[bool, typer.Option("--list-scenarios", help="print the scenarios")] = False,
    record_to: Annotated[
        Path | None, typer.Option("--record", help="write a run offline to FILE.csv or FILE.parquet")
    ] = None,
    line: Annotated[
        Path | None,
        typer.Option(
            "--line",
            help="a line description to simulate (lines/*.toml): the pilot line's kinds, or a dry press "
            "and a sintering furnace under any names and units",
        ),
    ] = None,
) -> None:
    """Run the simulated pilot line (OPC UA coater and calender, MQTT formation cyclers), or with --line
    a described line of the simulator's kinds."""
    if list_scenarios:
        _print_scenarios()
        return
    settings = settings_from(
        ctx,
        **{
            "plant.opcua_endpoint": opcua_endpoint,
            "mqtt.host": mqtt_host,
            "mqtt.port": mqtt_port,
            "plant.scenario": scenario,
            "plant.seed": seed,
            "plant.speed": speed,
            "plant.payload": payload,
            "plant.realistic": realistic,
            "plant.duration_s": duration,
            "line_description": line,
        },
    )
    if _described(settings):
        if record_to is not None:
            raise typer.BadParameter("--record writes the pilot line; a described line is served live")
        from plant.described import DescribedLine

        with user_errors():
            DescribedLine(
                linedesc.load(settings.line_description),
                settings.plant.scenario,
                settings.plant.seed,
                settings.plant.cycler_channels,
                settings.plant.realistic,
            )
        run_guarded(lambda: asyncio.run(_serve(settings)))
        return
    if record_to is not None:
        _record(settings, record_to)
        return
    from plant.scenarios import get_scenario

    with user_errors():
        get_scenario(settings.plant.scenario)
    run_guarded(lambda: asyncio.run(_serve(settings)))


def _described(settings: Settings) -> bool:
    """Whether ``line_description`` names a line other than the pilot line's own (``plant.described``)."""
    if settings.line_description is None:
        return False
    from plant.described import is_pilot

    with user_errors():
        return not is_pilot(linedesc.load(settings.line_description))


def _print_scenarios() -> None:
    from plant.scenarios import SCENARIOS

    table = Table(
        Column("scenario", no_wrap=True), "onset [s]", "ramp [s]", "magnitude", "signals", "signature"
    )
    for s in SCENARIOS.values():
        if not s.faults:
            table.add_row(s.name, "-", "-", "-", "-", s.description)
        for f in s.faults:
            where = f" on {f.channel}" if f.channel else ""
            table.add_row(
                s.name,
                f"{f.onset_s:g}",
                f"{f.ramp_s:g}",
                f"{f.parameter} {f.magnitude:+g} {f.unit}{where}",
                ", ".join(f.signals),
                f.signature,
            )
    Console().print(table)  # made here so it sizes itself to the terminal it prints on


def _record(settings: Settings, path: Path) -> None:
    from plant.recording import record

    cfg = settings.plant
    duration = cfg.duration_s if cfg.duration_s is not None else 8 * 3600.0
    with user_errors():
        recording = record(cfg.scenario, cfg.seed, duration, cfg.tick_s, cycler_channels=cfg.cycler_channels)
        written = recording.save(path)
    for file in written:
        console.print(f"wrote {file}")


async def _serve(settings: Settings) -> None:
    from plant.runtime import running

    async with running(settings) as plant:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, plant.stop.set)
        if _described(settings):
            cfg, ns = settings.plant, settings.namespace()
            console.print(
                f"[bold]linetwin plant[/] line={settings.line_description} scenario={cfg.scenario} "
                f"seed={cfg.seed} speed={cfg.speed:g}x run={plant.run_id}\n  OPC UA  {cfg.opcua_endpoint}\n"
                f"  MQTT    {settings.mqtt.host}:{settings.mqtt.port}  cyclers under {ns.levels}/# "
                f"or spBv1.0/{ns.sparkplug_group}/# ({cfg.payload}), if the line forms cells\n"
                "  Ctrl-C stops."
            )
        else:
            _print_connect(settings, plant.run_id)
        await plant.finished.wait()


def _print_connect(settings: Settings, run_id: str) -> None:
    cfg, ns = settings.plant, settings.namespace()
    topics = f"{ns.levels}/#" if cfg.payload == "json" else f"spBv1.0/{ns.sparkplug_group}/#"
    console.print(
        f"[bold]linetwin plant[/] scenario={cfg.scenario} seed={cfg.seed} speed={cfg.speed:g}x run={run_id}\n"
        f"  OPC UA  {cfg.opcua_endpoint}  (Objects/PilotLine/Coater1, Calender1)\n"
        f"  MQTT    {settings.mqtt.host}:{settings.mqtt.port}  topics {topics} ({cfg.payload})\n"
        f"  ground truth -> {cfg.ground_truth_file}\n"
        "  Ctrl-C stops."
    )
