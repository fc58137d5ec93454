"""Root cause from the pattern of drifting residuals (a fault-signature matrix) and what to do about it.

Each machine has structured residuals: a measurement against its physics prediction from other sensors
(loading vs mass balance, thickness vs compaction law, capacity vs genealogy) and each actuator against
its setpoint. Which of them move, and in which direction, separates a sensor fault from a process change:

| moving                                   | not moving                 | cause                 |
|------------------------------------------|----------------------------|-----------------------|
| dryer zone vs setpoint                   |                            | dryer_zone_fault      |
| pump flow vs setpoint (down)             |                            | pump_wear             |
| web speed vs setpoint                    |                            | speed_control         |
| loading residual, slurry density         |                            | solids_drift          |
| loading residual                         | density, flow, speed       | gauge_bias            |
| residual solvent vs drying model         | zones                      | drying_fault          |
| roll temperature vs setpoint             |                            | roll_heating          |
| thickness/porosity residual              | line load, roll temp, m_A  | load_cell_bias        |
| incoming loading (residuals flat)        |                            | upstream_loading      |
| capacity residual on one channel         | other channels             | cycler_channel_offset |
| capacity level across channels           | capacity residual          | upstream_loading      |
| K-value outlier share                    |                            | micro_short           |
| one signal of a step without a model     |                            | signal_drift          |

The solid-state kinds (``models.steps.drypress``, ``models.steps.furnace``) classify the same way:
feeder, roll temperature, furnace zone, belt and atmosphere faults by their own signal; a density or
thickness shift with none of them moving by elimination (``compaction_change``, ``thermocouple_drift``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Cause:
    title: str
    action: str


CAUSES: dict[str, Cause] = {
    "pump_wear": Cause(
        "Metering pump wear: delivered flow below setpoint",
        "Inspect the metering pump (seals, gear wear); raise the flow setpoint to hold loading; "
        "check the loading of the rolls coated since onset.",
    ),
    "solids_drift": Cause(
        "Slurry solids drift: density and loading rise at constant flow",
        "Take a solids sample from the tank, close the lid, re-dilute to recipe; lower the flow "
        "setpoint to hold loading.",
    ),
    "gauge_bias": Cause(
        "Loading gauge bias: the gauge drifts while the mass balance does not",
        "Standardise the beta gauge on its reference foil; do not correct the pump from this gauge.",
    ),
    "speed_control": Cause("Web speed off its setpoint", "Check the drive controller and tension loops."),
    "dryer_zone_fault": Cause(
        "Dryer zone runs off setpoint; residual solvent at risk",
        "Check the heater bank and air flow of the zone; test residual solvent of the rolls since onset.",
    ),
    "drying_fault": Cause(
        "Residual solvent above what the dryer settings explain",
        "Check dryer air flow and exhaust; test residual solvent of the rolls since onset.",
    ),
    "roll_heating": Cause(
        "Calender roll heating: rolls warm, thickness and porosity fall at flat line load",
        "Check the roll temperature control loop; hold the rolls calendered since onset for porosity.",
    ),
    "load_cell_bias": Cause(
        "Calender load-cell bias: thickness and porosity move while line load, roll temperature and "
        "incoming loading are steady",
        "Verify the load cells against a reference; adjust the line-load setpoint from a porosity check.",
    ),
    "line_load_control": Cause("Calender line load off its setpoint", "Check the hydraulic force control."),
    "upstream_loading": Cause(
        "Upstream loading drift: the electrode arrives with a different loading",
        "Follow the coater's findings; quarantine the rolls and cells built from them.",
    ),
    "cycler_channel_offset": Cause(
        "Cycler channel calibration offset: one channel's capacities shift",
        "Recalibrate the channel's current measurement; re-test its cells on another channel.",
    ),
    "formation_drift": Cause(
        "Capacity off what the electrode loading predicts on many channels",
        "Check the formation chamber temperature and the formation program.",
    ),
    "micro_short": Cause(
        "Self-discharge tail: more cells above the K-value threshold (micro-shorts, contamination)",
        "Scrap the flagged cells; audit assembly cleanliness for the batch.",
    ),
    "feed_drift": Cause(
        "Powder feeder drift: delivered feed below setpoint, the film gets lighter",
        "Check the feeder's screw and refill; recalibrate the loss-in-weight scale; raise the feed "
        "setpoint to hold loading; check the loading of the film pressed since onset.",
    ),
    "press_roll_heating": Cause(
        "Press roll heating: the binder softens, the film presses denser and thinner at flat load",
        "Check the roll temperature control; hold the film pressed since onset for thickness and density.",
    ),
    "compaction_change": Cause(
        "Film compaction changed at steady load and roll temperature (binder content or fibrillation)",
        "Check the powder lot's binder content and the mixer's fibrillation; measure film strength.",
    ),
    "furnace_zone_fault": Cause(
        "Furnace zone runs off its setpoint; the sintered density is at risk",
        "Check the zone's heater elements and controller output; test the density of parts since onset.",
    ),
    "belt_speed_error": Cause(
        "Furnace belt off its speed setpoint: the dwell in every zone changes",
        "Check the belt drive and its encoder; test the density of parts since onset.",
    ),
    "atmosphere_leak": Cause(
        "Furnace atmosphere leak: oxygen or moisture rises and the ceramic sinters less dense",
        "Check door seals and gas supply; purge; quarantine parts sintered since onset.",
    ),
    "heater_aging": Cause(
        "A furnace heater needs more power to hold its zone: elements aging",
        "Plan the element replacement; watch the zone's temperature margin.",
    ),
    "thermocouple_drift": Cause(
        "Density off the sintering curve while every zone reads right: a thermocouple drifting (or a "
        "tape lot sintering differently)",
        "Check the zone thermocouples against a reference; check the tape lot's green density.",
    ),
    "signal_drift": Cause(
        "A signal of a step without a process model left its in-control level",
        "Look at the signal and what changed on its step since onset; describe the step's kind to get a "
        "cause.",
    ),
    "correlation_break": Cause(
        "Signals of the machine no longer move together as in training",
        "Look at the contributing signals; check the sensors named first.",
    ),
}


@dataclass(slots=True)
class Finding:
    """What drifted, since when, by how much, the likely cause and what to do (one alarm-worthy fact)."""

    line: str
    machine: str
    signal: str
    onset_ns: int
    magnitude: float
    unit: str
    cause: str
    confidence: float
    detector: str
    statistic: float = 0.0
    threshold: float = 0.0
    time_ns: int = 0
    channel: str | None = None
    rolls: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)
    detail: str = ""
    #: the features moving when the cause was named (the alarmed one among them): while any of their
    #: detectors keeps alarming, the condition stands
    moving: tuple[str, ...] = ()
    #: consequences downstream (``step.signal``) that this finding's alarm stands for: one cause, one alarm
    affected: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return CAUSES[self.cause].title

    @property
    def action(self) -> str:
        return CAUSES[self.cause].action

    @property
    def key(self) -> str:
        return f"{self.line}/{self.machine}/{self.signal}/{self.cause}"

    @property
    def text(self) -> str:
        where = f" on {self.channel}" if self.channel else ""
        text = f"{self.signal}{where} moved {self.magnitude:+.4g} {self.unit}. {self.detail}".strip()
        return f"{text} Downstream it also moves {', '.join(self.affected)}." if self.affected else text


def classify_coater(moving: Collection[str], feature: str) -> tuple[str, str, float] | None:
    """(cause, signal to name, confidence) for an alarm on ``feature`` given the features ``moving``.

    None when the alarm is a consequence that is not itself a quality risk (less solvent than usual).
    """
    zones = sorted(f for f in moving if f.startswith("dryer_zone"))
    if feature.startswith("dryer_zone"):
        return "dryer_zone_fault", feature.removesuffix("_deviation") + "_temperature", 0.9
    if zones:  # solvent left in the film also weighs on the loading gauge
        return "dryer_zone_fault", zones[0].removesuffix("_deviation") + "_temperature", 0.85
    if feature == "residual_solvent":
        return "drying_fault", "residual_solvent", 0.6
    if feature == "pump_flow_deviation":
        return "pump_wear", "pump_flow", 0.9
    if feature == "web_speed_deviation":
        return "speed_control", "web_speed", 0.8
    if feature == "slurry_density" or "slurry_density" in moving:
        return "solids_drift", "slurry_density", 0.85
    if "pump_flow_deviation" in moving:
        return "pump_wear", "pump_flow", 0.8
    if "web_speed_deviation" in moving:
        return "speed_control", "web_speed", 0.7
    if feature == "dry_loading_residual":
        return "gauge_bias", "dry_loading", 0.6
    return "upstream_loading", feature, 0.4


def classify_calender(moving: Collection[str], feature: str) -> tuple[str, str, float]:
    if feature == "roll_temperature_deviation" or "roll_temperature_deviation" in moving:
        return "roll_heating", "roll_temperature", 0.9
    if feature == "line_load_deviation":
        return "line_load_control", "line_load", 0.8
    if feature == "incoming_loading" or "incoming_loading" in moving:
        return "upstream_loading", "incoming_loading", 0.8
    if feature in ("thickness_residual", "porosity_residual"):
        return "load_cell_bias", feature.removesuffix("_residual"), 0.7
    return "correlation_break", feature, 0.3
