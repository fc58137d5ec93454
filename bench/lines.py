"""The shipped lines the detection bench runs: each with its simulator, scenarios and the baselines' signals.

A line is its description (``lines/``), the simulator that makes its data, the fault scenarios that
simulator knows, and the key signals the baselines watch (what an engineer would chart). The pilot line
is ``plant.recording``; the vendor two-coater line is two pilot lines dressed in its names and units
(``plant.dressed``); the solid-state line is ``plant.solidstate``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pandas as pd

from core import linedesc
from core.linedesc import LineDescription
from plant import dressed, solidstate
from plant.recording import record
from plant.scenarios import SCENARIOS, Scenario

PILOT_KEY_SIGNALS = (
    "coater1.pump_flow",
    "coater1.web_speed",
    "coater1.dry_loading",
    "coater1.slurry_density",
    "coater1.residual_solvent",
    "coater1.dryer_zone1_temperature",
    "coater1.dryer_zone2_temperature",
    "coater1.dryer_zone3_temperature",
    "calender1.thickness",
    "calender1.porosity",
    "calender1.roll_temperature",
    "calender1.line_load",
    "calender1.incoming_loading",
)
SOLID_STATE_KEY_SIGNALS = (
    "press1.powder_feed",
    "press1.line_speed",
    "press1.areal_loading",
    "press1.film_thickness",
    "press1.roll_temperature",
    "press1.line_load",
    "furnace1.zone1_temperature",
    "furnace1.zone2_temperature",
    "furnace1.zone3_temperature",
    "furnace1.belt_speed",
    "furnace1.o2",
    "furnace1.dew_point",
    "furnace1.relative_density",
)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long the twin calibrates, when faults start and how long runs last, in plant seconds.

    On the clean simulators 45 minutes of calibration see everything in-control operation will do. A
    realistic line's disturbances wander for tens of minutes, and a level chart can only know how far
    from a training period several times that long (``models.levelchart``): the realistic bench lets the
    twin calibrate for six hours, as a real line's first shifts would, and starts the faults after it.
    Formation faults start later still: the cells calibrate after the steps upstream of them, then each
    channel needs its own reference cells.
    """

    train_s: float
    onset_s: float
    run_s: float
    cell_onset_s: float
    cell_run_s: float


HOUR = 3600.0
CLEAN = Timing(train_s=0.75 * HOUR, onset_s=HOUR, run_s=3 * HOUR, cell_onset_s=4 * HOUR, cell_run_s=8 * HOUR)
REALISTIC = Timing(
    train_s=6 * HOUR, onset_s=8 * HOUR, run_s=11 * HOUR, cell_onset_s=10 * HOUR, cell_run_s=14 * HOUR
)


@dataclass(frozen=True, slots=True)
class Run:
    """One simulated run: the process table, the formed cells (if the line forms any) and ground truth."""

    process: pd.DataFrame
    cells: pd.DataFrame | None
    ground_truth: list[dict[str, Any]]


@dataclass(frozen=True)
class BenchLine:
    name: str
    description: LineDescription
    scenarios: Mapping[str, Scenario]
    recorder: Callable[..., Run]  # (scenario, seed, duration_s) -> Run
    key_signals: tuple[str, ...]
    #: the plant machines whose scenarios are about cells: they run longer, with a later onset
    cell_machines: frozenset[str] = frozenset()
    timing: Timing = CLEAN

    def realistic(self) -> BenchLine:
        """The same line on its simulator's realistic option (``plant.disturbances``), calibrating for as
        long as its disturbances need (``Timing``)."""
        return replace(
            self,
            name=f"{self.name}, realistic",
            recorder=partial(self.recorder, realistic=True),
            timing=REALISTIC,
        )

    @property
    def cell_step(self) -> str | None:
        """The described step that forms cells, under whose name the baselines watch them."""
        return next((s.id for s in self.description.steps if s.kind == "formation"), None)


def _pilot(scenario: Scenario, seed: int, duration_s: float, realistic: bool = False) -> Run:
    rec = record(scenario, seed, duration_s, realistic=realistic)
    return Run(rec.process, rec.cells, rec.ground_truth)


def _two_coater(scenario: Scenario, seed: int, duration_s: float, realistic: bool = False) -> Run:
    run = dressed.record_line(scenario, seed, duration_s, realistic)
    return Run(run.process, run.cells, run.ground_truth)


def _solid_state(scenario: Scenario, seed: int, duration_s: float, realistic: bool = False) -> Run:
    rec = solidstate.record(scenario, seed, duration_s, realistic=realistic)
    return Run(rec.process, None, rec.ground_truth)


def _dressed_key_signals() -> tuple[str, ...]:
    description = dressed.line()
    return tuple(
        renamed
        for prefix in ("anode", "cathode")
        for renamed, *_ in (
            dressed.names(description, dressed.steps(description, prefix))[c] for c in PILOT_KEY_SIGNALS
        )
    )


def shipped() -> dict[str, BenchLine]:
    """Every shipped line, by the name of its file in ``lines/``."""
    return {
        "pilot-nmc": BenchLine(
            "pilot-nmc", linedesc.load(), SCENARIOS, _pilot, PILOT_KEY_SIGNALS, frozenset({"cycler1"})
        ),
        "two-coater": BenchLine(
            "two-coater",
            dressed.line(),
            SCENARIOS,
            _two_coater,
            _dressed_key_signals(),
            frozenset({"cycler1"}),
        ),
        "solid-state": BenchLine(
            "solid-state",
            linedesc.load(linedesc.builtin_path("solid-state")),
            solidstate.SCENARIOS,
            _solid_state,
            SOLID_STATE_KEY_SIGNALS,
        ),
    }
