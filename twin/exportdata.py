"""``twin export data``: a line's samples out of InfluxDB as Parquet, with a JSON-LD description.

Three files and their description, so another pilot line can load the data without asking what a
column means:

- ``samples.parquet``: every stored value, long: time (source), step, signal, channel, value, unit,
  quality, roll and cell;
- ``process.parquet``: the tick-read steps' good values wide, one column per ``<step>.<signal>`` and
  each step's roll, as ``twin backtest`` reads a table (``twin backtest DIR`` finds it);
- ``process.cells.parquet``: one row per formed cell (channel, roll, position, capacities, K-value and
  when each was known), the cell table ``twin backtest`` reads beside the process table;
- ``dataset.jsonld``: a DCAT dataset with the three distributions, CSVW columns carrying each series'
  FAIR metadata (``twin.fair``), and the PROV activities (ingest, each step's model and its version).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd

from core.linedesc import LineDescription
from core.settings import Settings
from twin import fair
from twin.influx import query

CHUNK_NS = 3600 * 10**9
PARQUET = "application/vnd.apache.parquet"
CELL_ROLES = {
    "position_m": "position_m",
    "charge_capacity": "charge_capacity",
    "discharge_capacity": "discharge_capacity",
    "k_value": "k_value",
}


async def _samples(settings: Settings, description: LineDescription, start: int, end: int) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for step in description.steps:
        t = start
        while t < end:
            chunk_end = min(t + CHUNK_NS, end)
            series = await query(
                settings.influx,
                'SELECT "value", "roll_id", "cell_id" FROM "process" WHERE "line" = $line AND '
                f'"machine" = $machine AND time >= {t} AND time < {chunk_end} GROUP BY *',
                {"line": description.line, "machine": step.id},
            )
            for s in series:
                tags = s.get("tags", {})
                for time_ns, value, roll, cell in s.get("values", []):
                    rows.append(
                        {
                            "time": time_ns,
                            "machine": step.id,
                            "signal": tags.get("signal", ""),
                            "channel": tags.get("channel") or None,
                            "value": value,
                            "unit": tags.get("unit", ""),
                            "quality": tags.get("quality", ""),
                            "roll_id": roll,
                            "cell_id": cell,
                        }
                    )
            t = chunk_end
    frame = pd.DataFrame(
        rows,
        columns=["time", "machine", "signal", "channel", "value", "unit", "quality", "roll_id", "cell_id"],
    )
    frame["time"] = pd.to_datetime(frame["time"], unit="ns", utc=True)
    return frame.sort_values(["time", "machine", "signal"], kind="stable").reset_index(drop=True)


def wide(samples: pd.DataFrame, ticked: list[str]) -> pd.DataFrame:
    """The tick-read steps' good values, one row per source time, and each step's roll.

    A source sends a value when it changes (an OPC UA data change), so a setpoint appears once; the
    live twin holds each machine's last values for its ticks that lack them, and so does this table:
    each machine's columns are carried forward over the rows where that machine ticked.
    """
    good = samples[(samples["quality"] == "good") & samples["machine"].isin(ticked)]
    good = good.assign(column=good["machine"] + "." + good["signal"])
    table = good.pivot_table(index="time", columns="column", values="value", aggfunc="last")
    table.columns.name = None
    rolls = good.dropna(subset=["roll_id"])
    for machine, group in rolls.groupby("machine"):
        table[f"{machine}.roll_id"] = group.groupby("time")["roll_id"].last().reindex(table.index)
    for machine in ticked:
        columns = [c for c in table.columns if c.startswith(f"{machine}.")]
        ticks = table[columns].notna().any(axis=1)
        table.loc[ticks, columns] = table.loc[ticks, columns].ffill()
    return table.reset_index()


def cells(samples: pd.DataFrame, description: LineDescription, formation: list[str]) -> pd.DataFrame:
    """One row per formed cell: what ``models.replay`` feeds the cell models."""
    roles = {s.name: (s.role or s.name) for step in description.steps for s in step.signals}
    rows = []
    per_cell = samples[samples["machine"].isin(formation) & samples["cell_id"].notna()]
    for cell_id, group in per_cell.groupby("cell_id"):
        values = {roles.get(r.signal, r.signal): (r.value, r.time) for r in group.itertuples()}
        if "discharge_capacity" not in values:
            continue
        rows.append(
            {
                "cell_id": cell_id,
                "channel": group["channel"].dropna().iloc[0] if group["channel"].notna().any() else "",
                "cathode_roll_id": group["roll_id"].dropna().iloc[0]
                if group["roll_id"].notna().any()
                else "",
                **{name: values.get(role, (float("nan"), None))[0] for name, role in CELL_ROLES.items()},
                "formation_end": values["discharge_capacity"][1],
                "aging_end": values["k_value"][1] if "k_value" in values else values["discharge_capacity"][1],
            }
        )
    return pd.DataFrame(rows)


def export_line(
    settings: Settings,
    description: LineDescription,
    start: int,
    end: int,
    out: Path,
    models: list[dict[str, Any]],
) -> int:
    """Write the export (see module); returns the number of samples."""
    samples = asyncio.run(_samples(settings, description, start, end))
    out.mkdir(parents=True, exist_ok=True)
    formation = [s.id for s in description.steps if s.kind == "formation"]
    ticked = [s.id for s in description.steps if s.kind != "formation"]
    samples.to_parquet(out / "samples.parquet", index=False)
    wide(samples, ticked).to_parquet(out / "process.parquet", index=False)
    cells(samples, description, formation).to_parquet(out / "process.cells.parquet", index=False)
    span = (fair.iso(start), fair.iso(end))
    distributions = [
        {
            "@id": f"{fair.line_iri(description)}:export:{name}",
            "@type": "dcat:Distribution",
            "title": title,
            "mediaType": PARQUET,
            "downloadURL": f"{name}",
        }
        for name, title in (
            ("samples.parquet", "every stored value, long, with unit, quality, roll and cell"),
            ("process.parquet", "the tick-read steps' good values, one column per step.signal"),
            ("process.cells.parquet", "one row per formed cell"),
        )
    ]
    document = fair.dataset(
        description,
        fair.series(settings, description),
        distributions,
        models,
        span[0],
        span[1],
        fair.iso(pd.Timestamp.now(tz="UTC").value),
    )
    (out / "dataset.jsonld").write_text(json.dumps(document, indent=1) + "\n")
    return len(samples)
