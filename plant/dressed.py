"""The vendor two-coater line (``lines/two-coater.toml``) simulated by two pilot lines in its names.

An anode line and a cathode line are each a ``PilotLine`` (coater and calender) with its own seed, hence
its own hidden parameters and noise; the cells formed are the cathode line's (their capacity follows the
cathode's loading). Every value is renamed to the description's signal (matched by role, the pilot
line's names being the roles) and converted from the pilot's unit into the vendor's with
``core.units``, so the twin sees the vendor's names and units and nothing that names the pilot.

A process scenario runs on the anode line, a cell scenario on the cathode line (whose cells are formed),
the other line nominal; the ground truth is renamed the same way.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core import linedesc, units
from core.linedesc import LineDescription
from plant.recording import Recording, record
from plant.scenarios import SCENARIOS, Scenario

PILOT = {"coater1": "slot_die_coater", "calender1": "calender", "cycler1": "formation"}
CATHODE_SEED = 500  # the cathode line's seed is the run's seed + this


@dataclass
class DressedRun:
    process: pd.DataFrame
    cells: pd.DataFrame
    ground_truth: list[dict[str, Any]]


def line() -> LineDescription:
    return linedesc.load(linedesc.builtin_path("two-coater"))


def steps(description: LineDescription, prefix: str) -> dict[str, str]:
    """Pilot machine -> the described step of its kind whose id starts with ``prefix``."""
    return {
        machine: next(s.id for s in description.steps if s.kind == kind and s.id.startswith(prefix))
        for machine, kind in PILOT.items()
        if kind != "formation"
    }


def names(description: LineDescription, machines: dict[str, str]) -> dict[str, tuple[str, float, float]]:
    """``machine.signal`` of the pilot -> (``step.signal`` of the line, scale, offset) of each value."""
    pilot = linedesc.load()
    out = {}
    for machine, step_id in machines.items():
        step, source = description.step(step_id), pilot.step(machine)
        assert step is not None and source is not None
        for signal in step.signals:
            role = signal.role or signal.name
            plant = source.signal(role)
            unit = plant.unit if plant is not None else signal.unit
            conversion = units.converter(unit, signal.unit)
            out[f"{machine}.{role}"] = (f"{step_id}.{signal.name}", conversion.scale, conversion.offset)
    return out


def _dress(
    frame: pd.DataFrame, machines: dict[str, str], description: LineDescription, tag: str
) -> pd.DataFrame:
    columns = {}
    for column, (name, scale, offset) in names(description, machines).items():
        if column in frame:
            columns[name] = frame[column] * scale + offset
    for machine, step_id in machines.items():
        columns[f"{step_id}.roll_id"] = tag + frame[f"{machine}.roll_id"].astype(str)
    return pd.DataFrame(columns, index=frame.index)


def _truth(
    records: list[dict[str, Any]], machines: dict[str, str], description: LineDescription
) -> list[Any]:
    renamed_as = names(description, machines)
    cells = next(s.id for s in description.steps if s.kind == "formation")
    renamed = []
    for row in records:
        source = str(row["machine"])
        machine = machines.get(source, cells if PILOT.get(source) == "formation" else source)
        signals = []
        for pattern in row["signals"]:
            hits = [renamed_as[c][0] for c in renamed_as if fnmatch.fnmatch(c, pattern)]
            signals += hits or ([pattern] if pattern.startswith("cells.") else [])
        renamed.append({**row, "machine": machine, "signals": signals})
    return renamed


def record_line(
    scenario: Scenario | str, seed: int, duration_s: float, realistic: bool = False
) -> DressedRun:
    """The two-coater line running ``scenario`` for ``duration_s`` plant seconds (see module)."""
    spec = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    description = line()
    on_cells = bool(spec.faults) and spec.machines <= {"cycler1"}
    nominal = SCENARIOS["nominal"]
    anode: Recording = record(nominal if on_cells else spec, seed, duration_s, realistic=realistic)
    cathode: Recording = record(
        spec if on_cells else nominal, seed + CATHODE_SEED, duration_s, realistic=realistic
    )
    anode_steps, cathode_steps = steps(description, "anode"), steps(description, "cathode")
    process = pd.concat(
        [
            _dress(anode.process, anode_steps, description, "AN-"),
            _dress(cathode.process, cathode_steps, description, ""),
        ],
        axis=1,
    )
    formation = next(s for s in description.steps if s.kind == "formation")
    mah = {
        name: units.converter("Ah", sig.unit).scale
        for name in ("charge_capacity", "discharge_capacity")
        if (sig := next((x for x in formation.signals if x.role == name), None)) is not None
    }
    cells = cathode.cells.assign(**{name: cathode.cells[name] * scale for name, scale in mah.items()})
    truth = _truth(cathode.ground_truth if on_cells else anode.ground_truth, anode_steps, description)
    return DressedRun(process, cells, truth)
