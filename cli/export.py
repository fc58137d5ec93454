"""``twin export``: battery passport records and FAIR data out of the line, for anyone else to read.

Both work from what the twin keeps (its state file: genealogy, alerts, versioned passports, the line
model's snapshot) and from InfluxDB, so they run beside a live twin or after it stopped.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from cli.context import run_guarded, settings_from
from core import linedesc
from core.errors import ConfigError
from core.records import Parameter
from core.settings import Settings
from models.line import SNAPSHOT_VERSION, LineModel
from twin import aas, fair
from twin.alerts import AlertStore, open_database
from twin.exportdata import export_line
from twin.passport import PassportSource, kept_cell_passport, kept_roll_passport, line_alerts
from twin.store import StateStore

export_app = typer.Typer(help="Passport records and FAIR data out of the line.", no_args_is_help=True)
console = Console()
FORMATS = ("jsonld", "aas-json", "aasx")


def parse_time(text: str) -> int:
    """An ISO 8601 time (UTC unless it says otherwise) as ns since the epoch; ConfigError if not one."""
    try:
        stamp = pd.Timestamp(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ConfigError(f"{text!r} is not an ISO 8601 time such as 2026-12-01T08:00:00Z") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def _parameters(settings: Settings, state: StateStore) -> tuple[list[Parameter], dict[str, tuple[str, bool]]]:
    """The line model's parameters and step classes from its last snapshot (none before one exists)."""
    snapshot = state.load_snapshot(settings.line)
    description = linedesc.load(settings.line_description)
    if snapshot is None:
        return [], {}
    saved = json.loads(snapshot.model)["model"]
    if saved.get("version") != SNAPSHOT_VERSION:
        return [], {}
    model = LineModel.restore(saved, description)
    classes = {m: (type(s).__name__, s.calibrated) for m, s in model.steps.items()}
    return model.parameters(), classes


def passport_command(
    ctx: typer.Context,
    cell: Annotated[str | None, typer.Argument(help="a cell id")] = None,
    roll: Annotated[str | None, typer.Option(help="a roll: its record and its cells' passports")] = None,
    since: Annotated[str | None, typer.Option(help="every cell formed since this ISO 8601 time")] = None,
    out: Annotated[Path, typer.Option(help="directory to write the records to")] = Path("passports"),
    format: Annotated[
        list[str] | None, typer.Option("--format", help="jsonld, aas-json, aasx; repeat for more")
    ] = None,
) -> None:
    """Write passport records (JSON-LD; AAS JSON and AASX through BaSyx) of cells and rolls."""
    settings = settings_from(ctx)
    formats = format or ["jsonld"]

    def job() -> None:
        unknown = sorted(set(formats) - set(FORMATS))
        if unknown:
            raise ConfigError(f"unknown format {', '.join(unknown)}: use {', '.join(FORMATS)}")
        if sum(x is not None for x in (cell, roll, since)) != 1:
            raise ConfigError("name one of: a CELL, --roll ROLL or --since TIME")
        records = asyncio.run(_records(settings, cell, roll, since))
        out.mkdir(parents=True, exist_ok=True)
        if "jsonld" in formats:
            for record in records:
                name = str(record["@id"]).rsplit(":", 2)
                (out / f"{name[-2]}-{name[-1]}.jsonld").write_text(json.dumps(record, indent=1) + "\n")
        if "aas-json" in formats:
            aas.write_json(records, out / "passports.aas.json")
        if "aasx" in formats:
            aas.write_aasx(records, out / "passports.aasx")
        console.print(f"{len(records)} records written to {out} ({', '.join(formats)})")

    run_guarded(job)


async def _records(settings: Settings, cell: str | None, roll: str | None, since: str | None) -> list[Any]:
    description = fair.identified(linedesc.load(settings.line_description), settings)
    database = open_database(settings.twin.state_file)
    state = StateStore(database)
    alerts = line_alerts(AlertStore(database), settings.line)
    parameters, _ = _parameters(settings, state)
    source = PassportSource(settings.influx, description)
    now = time.time_ns()
    if roll is not None:
        record = await kept_roll_passport(source, state, alerts, parameters, roll, now)
        if record is None:
            raise ConfigError(f"roll {roll!r} has not been seen on line {settings.line}")
        cells = [c.cell_id for c in state.cells_of_roll(roll)]
        found = [record]
    else:
        cells = [cell] if cell is not None else state.cells_since(settings.line, parse_time(str(since)))
        found = []
    for cell_id in cells:
        passport = await kept_cell_passport(source, state, alerts, parameters, cell_id, now)
        if passport is None:
            raise ConfigError(f"cell {cell_id!r} has not been seen on line {settings.line}")
        found.append(passport)
    return found


def data_command(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="from this ISO 8601 time")],
    until: Annotated[str, typer.Option(help="to this ISO 8601 time")],
    line: Annotated[str | None, typer.Option(help="the line [line]")] = None,
    out: Annotated[Path, typer.Option(help="directory to write the export to")] = Path("export"),
) -> None:
    """Write a line's samples as Parquet with a JSON-LD description (DCAT, CSVW columns, PROV); ``twin
    backtest DIR`` reads it."""
    settings = settings_from(ctx, line=line)

    def job() -> None:
        start, end = parse_time(since), parse_time(until)
        if end <= start:
            raise ConfigError("--until must be after --since")
        description = fair.identified(linedesc.load(settings.line_description), settings)
        state = StateStore(open_database(settings.twin.state_file))
        _, classes = _parameters(settings, state)
        events = state.model_events(settings.line)
        rebaselined = {e.step: e.at_ns for e in events if e.action == "rebaseline"}
        models = fair.models(
            description,
            {m: c for m, (c, _) in classes.items()},
            {m: done for m, (_, done) in classes.items()},
            SNAPSHOT_VERSION,
            rebaselined,
        )
        written = export_line(settings, description, start, end, out, models)
        console.print(f"{written} samples of line {settings.line} written to {out}")

    run_guarded(job)


export_app.command("passport")(passport_command)
export_app.command("data")(data_command)
