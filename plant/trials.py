"""Setpoint schedules a process engineer runs on purpose, so that the twin can learn what steady production
cannot show it.

A calender trial steps the line load from light to heavy pressing, dwelling at each value for a few
hundred gauge readings, then returns to the recipe. At one line load only the compaction resistance of
the Meyer law is identifiable; across the range, the as-coated and the dense-limit porosity are too.
The offline recorder applies a schedule through the plant's own setpoint interface, so every value is
checked against the machine's range like an operator's write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from plant.line import RECIPE_SETPOINTS

LINE_LOAD = "calender1.line_load_setpoint"
TRIAL_LOADS = (150.0, 300.0, 500.0, 800.0, 1200.0, 1600.0, 2000.0)  # N/mm, within the 0–2000 setpoint range
TRIAL_DWELL_S = 300.0


@dataclass(frozen=True, slots=True)
class SetpointWrite:
    """Write ``value`` to setpoint ``column`` once plant time reaches ``at_s``."""

    at_s: float
    column: str
    value: float


def calender_trial(
    loads: Sequence[float] = TRIAL_LOADS, dwell_s: float = TRIAL_DWELL_S, start_s: float = 0.0
) -> tuple[SetpointWrite, ...]:
    """Line-load steps from ``start_s``, ``dwell_s`` each, then back to the recipe's line load."""
    steps = [SetpointWrite(start_s + k * dwell_s, LINE_LOAD, load) for k, load in enumerate(loads)]
    end = start_s + len(loads) * dwell_s
    return (*steps, SetpointWrite(end, LINE_LOAD, RECIPE_SETPOINTS[LINE_LOAD]))
