"""Offline recorder: run the plant physics without any server and collect tables for models and tests.

``record("pump-wear", seed=3, duration_s=8 * 3600)`` returns the same data a live ``twin sim`` run with
that seed and scenario would publish (untouched setpoints), as pandas DataFrames; an 8-hour shift at 1 s
ticks takes a few seconds. A ``Scenario`` object records as well as a name, e.g. a scaled one
(``SCENARIOS["pump-wear"].scaled(0.5)``), and its faults are what the ground truth then says.
``setpoints`` replays planned setpoint writes (``plant.trials``, e.g. a calender trial) as an operator
would make them. Column names are described in docs/address-space.md. While the beta gauge standardises
(``coater1.gauge_ok`` false) its readings are missing (NaN), as a historian keeps a value of Uncertain
status and as the live twin takes it: the held last value is no measurement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import ConfigError
from plant.formation import AGING_DAY_S, Cell, OcvReading
from plant.line import PilotLine
from plant.scenarios import Scenario, get_scenario
from plant.signals import GAUGE_SIGNALS, SIGNALS
from plant.trials import SetpointWrite

DEFAULT_START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)  # a Monday early shift: fixed, so runs repeat

CELL_UNITS = {
    "position_m": "m",
    "loading_true": "mg/cm2",
    "charge_capacity": "Ah",
    "discharge_capacity": "Ah",
    "first_cycle_efficiency": "%",
    "k_value": "mV/d",
    "ocv": "V",
    "age_days": "d",
}


@dataclass
class Recording:
    """What a run of the plant produced; ``units`` maps every numeric column to its unit."""

    scenario: str
    seed: int
    process: pd.DataFrame
    cells: pd.DataFrame
    ocv: pd.DataFrame
    ground_truth: list[dict[str, object]]
    units: dict[str, str]

    def save(self, path: Path) -> list[Path]:
        """Write the process table to ``path`` (.csv or .parquet) and the rest beside it."""
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ConfigError(f"cannot record to {path}: use a .csv or .parquet file name")
        path.parent.mkdir(parents=True, exist_ok=True)
        stem = path.with_suffix("")
        written = []
        for table, target in (
            (self.process, path),
            (self.cells, Path(f"{stem}.cells{suffix}")),
            (self.ocv, Path(f"{stem}.ocv{suffix}")),
        ):
            if suffix == ".csv":
                table.to_csv(target, index=table is self.process)
            else:
                table.to_parquet(target, index=table is self.process)
            written.append(target)
        truth = Path(f"{stem}.ground_truth.jsonl")
        truth.write_text("".join(json.dumps(row) + "\n" for row in self.ground_truth))
        units = Path(f"{stem}.units.json")
        units.write_text(json.dumps(self.units, indent=1, sort_keys=True) + "\n")
        return [*written, truth, units]


def record(
    scenario: str | Scenario,
    seed: int,
    duration_s: float,
    tick_s: float = 1.0,
    *,
    cycler_channels: int = 16,
    start: datetime = DEFAULT_START,
    setpoints: Sequence[SetpointWrite] = (),
    realistic: bool = False,
) -> Recording:
    """Run ``scenario`` with ``seed`` for ``duration_s`` plant seconds at ``tick_s`` and collect tables.

    Each of ``setpoints`` is written (range-checked, ``SetpointError`` if refused) before the first tick
    that ends after its time. ``realistic`` adds a real line's in-control disturbances
    (``plant.line.REALISM``).
    """
    if duration_s <= 0 or tick_s <= 0:
        raise ConfigError("duration_s and tick_s must be positive")
    spec = get_scenario(scenario) if isinstance(scenario, str) else scenario
    line = PilotLine(spec, seed, cycler_channels, realistic)
    n = round(duration_s / tick_s)
    columns: dict[str, np.ndarray] = {}
    text: dict[str, list[str]] = {}
    gauge_ok = np.empty(n, dtype=bool)
    cells: list[Cell] = []
    ocv: list[OcvReading] = []
    truth: list[dict[str, object]] = []
    writes = sorted(setpoints, key=lambda w: w.at_s)
    for i in range(n):
        while writes and writes[0].at_s <= line.t:
            write = writes.pop(0)
            line.write_setpoint(write.column, write.value)
        tick = line.step(tick_s)
        if not columns:
            columns = {name: np.empty(n) for name in tick.values}
            text = {name: [] for name in tick.text}
        for name, value in tick.values.items():
            columns[name][i] = value
        for name, label in tick.text.items():
            text[name].append(label)
        gauge_ok[i] = tick.gauge_ok
        cells.extend(tick.formed)
        ocv.extend(tick.ocv)
        truth.extend(f.ground_truth(spec.name, start) for f in tick.onsets)
    index = pd.DatetimeIndex([start + timedelta(seconds=tick_s * (i + 1)) for i in range(n)], name="time")
    for name in GAUGE_SIGNALS:  # held while the gauge standardises: Uncertain on OPC UA, no measurement
        columns[f"coater1.{name}"][~gauge_ok] = np.nan
    process = pd.DataFrame({**columns, **text, "coater1.gauge_ok": gauge_ok}, index=index)
    process = process[sorted(process.columns)]
    units = {s.column: s.unit for s in SIGNALS}
    units.update({"coater1.roll_position": "m", "calender1.roll_position": "m"})
    units.update({f"cells.{k}": u for k, u in CELL_UNITS.items() if k not in ("ocv", "age_days")})
    units.update({"ocv.ocv": "V", "ocv.age_days": "d"})
    k_values = {r.cell.cell_id: r.k_value for r in ocv if r.k_value is not None}
    return Recording(
        spec.name, seed, process, _cells_table(cells, k_values, start), _ocv_table(ocv, start), truth, units
    )


def _time(start: datetime, t: float) -> pd.Timestamp:
    return pd.Timestamp(start + timedelta(seconds=t))


def _cells_table(cells: list[Cell], k_values: dict[str, float], start: datetime) -> pd.DataFrame:
    """One row per formed cell; ``k_value`` stays NaN until its aging series completed in the run."""
    rows = []
    for c in cells:
        rows.append(
            {
                "cell_id": c.cell_id,
                "channel": c.channel,
                "cathode_roll_id": c.material.roll_id,
                "position_m": c.material.position_m,
                "formation_start": _time(start, c.start_s),
                "formation_end": _time(start, c.end_s),
                "charge_capacity": c.charge_capacity,
                "discharge_capacity": c.discharge_capacity,
                "first_cycle_efficiency": 100 * c.discharge_capacity / c.charge_capacity,
                "k_value": k_values.get(c.cell_id, np.nan),
                "aging_end": _time(start, c.end_s + 14 * AGING_DAY_S),
            }
        )
    return pd.DataFrame(rows, columns=list(_CELL_COLUMNS))


_CELL_COLUMNS = (
    "cell_id",
    "channel",
    "cathode_roll_id",
    "position_m",
    "formation_start",
    "formation_end",
    "charge_capacity",
    "discharge_capacity",
    "first_cycle_efficiency",
    "k_value",
    "aging_end",
)


def _ocv_table(readings: list[OcvReading], start: datetime) -> pd.DataFrame:
    rows = [
        {
            "cell_id": r.cell.cell_id,
            "channel": r.cell.channel,
            "time": _time(start, r.time_s),
            "age_days": r.age_days,
            "ocv": r.ocv,
        }
        for r in readings
    ]
    return pd.DataFrame(rows, columns=["cell_id", "channel", "time", "age_days", "ocv"])
