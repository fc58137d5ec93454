"""Seeded fault scenarios: what goes wrong on the line, from when, by how much, and where it shows.

A fault moves one hidden plant parameter linearly from 0 to ``magnitude`` over ``ramp_s`` plant seconds,
starting at ``onset_s``. ``expected`` is the documented signature: how much each listed signal moves,
measured as the mean over ``window_s`` after ``settled_s`` against the mean over the ``window_s``
before onset; tests hold the simulator to it. ``Scenario.scaled`` makes the same faults smaller, for
asking how small a drift a detector still catches; ``Scenario.delayed`` starts them later.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from core.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Expectation:
    """A signal moves by ``change`` (relative: fraction of its pre-onset mean; absolute: in its unit)."""

    signal: str
    change: float
    tolerance: float
    relative: bool = True


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    machine: str
    parameter: str
    magnitude: float
    unit: str
    onset_s: float
    ramp_s: float
    signals: tuple[str, ...]
    signature: str
    expected: tuple[Expectation, ...] = ()
    channel: str | None = None

    def level(self, t: float) -> float:
        """The fault's contribution to its parameter at plant time ``t``."""
        if t < self.onset_s:
            return 0.0
        if self.ramp_s <= 0 or t >= self.onset_s + self.ramp_s:
            return self.magnitude
        return self.magnitude * (t - self.onset_s) / self.ramp_s

    @property
    def settled_s(self) -> float:
        """Plant time by which the documented signature has fully appeared."""
        return self.onset_s + self.ramp_s + SETTLE_S

    def ground_truth(self, scenario: str, start: datetime) -> dict[str, object]:
        """The JSON-lines record benchmarks score detectors against."""
        return {
            "scenario": scenario,
            "fault": self.name,
            "machine": self.machine,
            "channel": self.channel,
            "parameter": self.parameter,
            "onset": (start + timedelta(seconds=self.onset_s)).isoformat().replace("+00:00", "Z"),
            "onset_s": self.onset_s,
            "ramp_s": self.ramp_s,
            "magnitude": self.magnitude,
            "unit": self.unit,
            "signals": list(self.signals),
        }


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def scaled(self, factor: float) -> Scenario:
        """The same faults at ``factor`` × their magnitude, with the same onset and ramp time.

        A ramp thus keeps its duration and its slope scales, a step its timing. The documented signatures
        (``expected``) hold for the full fault only, so a scaled fault has none; the name says the factor.
        """
        if not factor > 0:
            raise ConfigError(f"a fault scale must be positive, not {factor!r}")
        if factor == 1:
            return self
        faults = tuple(replace(f, magnitude=f.magnitude * factor, expected=()) for f in self.faults)
        return replace(self, name=f"{self.name} ×{factor:g}", faults=faults)

    def delayed(self, onset_s: float) -> Scenario:
        """The same faults, starting at plant time ``onset_s`` instead (magnitude and ramp kept)."""
        if not onset_s >= 0:
            raise ConfigError(f"a fault onset must be a time ≥ 0 s, not {onset_s!r}")
        return replace(self, faults=tuple(replace(f, onset_s=onset_s) for f in self.faults))

    @property
    def machines(self) -> frozenset[str]:
        """The machines its faults are on."""
        return frozenset(f.machine for f in self.faults)


SETTLE_S = 1200.0  # transport delay coater -> calender (900 s) plus dryer/roll thermal lags
WINDOW_S = 900.0
ONSET_S = 3600.0


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("nominal", "steady production at recipe setpoints; every signal in spec"),
        Scenario(
            "pump-wear",
            "the metering pump wears: delivered flow sags below its setpoint",
            (
                Fault(
                    "pump-wear",
                    "coater1",
                    "pump_efficiency",
                    -0.05,
                    "fraction",
                    ONSET_S,
                    4 * 3600.0,
                    (
                        "coater1.pump_flow",
                        "coater1.dry_loading",
                        "coater1.profile_lane*",
                        "calender1.incoming_loading",
                        "calender1.thickness",
                        "cells.discharge_capacity",
                    ),
                    "pump_flow and dry_loading fall together by 5 %, setpoint unchanged",
                    (
                        Expectation("coater1.pump_flow", -0.05, 0.01),
                        Expectation("coater1.dry_loading", -0.05, 0.01),
                        Expectation("calender1.thickness", -0.05, 0.015),
                    ),
                ),
            ),
        ),
        Scenario(
            "solids-drift",
            "solvent evaporates from the open slurry tank: true solids and density rise, the lab value not",
            (
                Fault(
                    "solids-drift",
                    "coater1",
                    "true_solids",
                    0.015,
                    "mass fraction",
                    ONSET_S,
                    2 * 3600.0,
                    (
                        "coater1.slurry_density",
                        "coater1.dry_loading",
                        "coater1.profile_lane*",
                        "calender1.incoming_loading",
                        "calender1.thickness",
                        "cells.discharge_capacity",
                    ),
                    "dry_loading +4.6 % and slurry_density +2.5 % at constant pump_flow and slurry_solids",
                    (
                        Expectation("coater1.dry_loading", 0.046, 0.01),
                        Expectation("coater1.slurry_density", 0.025, 0.006),
                        Expectation("coater1.pump_flow", 0.0, 0.005),
                        Expectation("coater1.slurry_solids", 0.0, 0.005),
                    ),
                ),
            ),
        ),
        Scenario(
            "dryer-zone-fault",
            "a heater bank of dryer zone 2 fails: the zone runs cold and solvent stays in the film",
            (
                Fault(
                    "dryer-zone-fault",
                    "coater1",
                    "dryer_zone2_offset",
                    -40.0,
                    "Cel",
                    ONSET_S,
                    600.0,
                    ("coater1.dryer_zone2_temperature", "coater1.residual_solvent", "coater1.dry_loading"),
                    "zone 2 temperature -40 Cel; residual_solvent rises from ~0.1 to ~0.4 wt%",
                    (
                        Expectation("coater1.dryer_zone2_temperature", -40.0, 3.0, relative=False),
                        Expectation("coater1.residual_solvent", 0.3, 0.1, relative=False),
                    ),
                ),
            ),
        ),
        Scenario(
            "calender-roll-heating",
            "roll heating control runs away: rolls warm, expand and compact the coating harder",
            (
                Fault(
                    "calender-roll-heating",
                    "calender1",
                    "roll_temperature_offset",
                    25.0,
                    "Cel",
                    ONSET_S,
                    1800.0,
                    (
                        "calender1.roll_temperature",
                        "calender1.porosity",
                        "calender1.thickness",
                        "calender1.roll_gap",
                    ),
                    "roll_temperature +25 Cel, porosity -2.5 points, thickness -3.5 %, roll_gap +55 um",
                    (
                        Expectation("calender1.roll_temperature", 25.0, 2.0, relative=False),
                        Expectation("calender1.porosity", -2.5, 0.5, relative=False),
                        Expectation("calender1.thickness", -0.035, 0.01),
                        Expectation("calender1.roll_gap", 55.0, 8.0, relative=False),
                    ),
                ),
            ),
        ),
        Scenario(
            "load-cell-bias",
            "a load cell drifts and reads high; force control then presses with less true load",
            (
                Fault(
                    "load-cell-bias",
                    "calender1",
                    "load_cell_bias",
                    80.0,
                    "N/mm",
                    ONSET_S,
                    600.0,
                    ("calender1.porosity", "calender1.thickness", "calender1.roll_gap"),
                    "line_load reading unchanged, porosity +1.1 points, thickness +1.6 %, roll_gap up",
                    (
                        Expectation("calender1.line_load", 0.0, 0.005),
                        Expectation("calender1.porosity", 1.1, 0.4, relative=False),
                        Expectation("calender1.thickness", 0.016, 0.006),
                    ),
                ),
            ),
        ),
        Scenario(
            "cycler-channel-offset",
            "the current calibration of cycler channel ch05 drifts: its cells read more capacity",
            (
                Fault(
                    "cycler-channel-offset",
                    "cycler1",
                    "current_calibration_offset",
                    0.03,
                    "fraction",
                    ONSET_S,
                    0.0,
                    ("cycler1.ch05.current", "cells.charge_capacity", "cells.discharge_capacity"),
                    "capacities of cells formed on ch05 after onset +3 % against the other channels",
                    (Expectation("cells.discharge_capacity@ch05", 0.03, 0.01),),
                    channel="ch05",
                ),
            ),
        ),
        Scenario(
            "micro-short",
            "particle contamination at assembly: a share of cells carries internal micro-shorts",
            (
                Fault(
                    "micro-short",
                    "cycler1",
                    "micro_short_share",
                    0.2,
                    "fraction of cells",
                    ONSET_S,
                    0.0,
                    ("cells.k_value", "cycler1.*.ocv"),
                    "20 % of cells assembled after onset self-discharge at 4-12 mV/d (K-value tail)",
                    (Expectation("cells.k_value_outlier_share", 0.2, 0.1, relative=False),),
                ),
            ),
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ConfigError(f"unknown scenario {name!r}; known scenarios: {known}") from None
