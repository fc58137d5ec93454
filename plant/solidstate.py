"""A solid-state pilot line: a dry-electrode press and a sintering furnace for ceramic separator tape.

The plant's truth for ``lines/solid-state.toml`` (DOMAIN.md, "Solid-state and post-lithium steps"):
- **press1**, solvent-free electrode film: a loss-in-weight feeder doses powder (it reports the flow it
  delivers), the nip presses it into a film. Areal loading from the mass balance m_A = feed / (W·v);
  relative density from the Heckel law ln(1/(1 − D)) = K(T)·q_L + A, the PTFE binder softer when the
  rolls are hotter (K grows with roll temperature); film thickness h = m_A / (ρ_true·D).
- **furnace1**, a belt furnace sintering garnet tape in three zones (binder burn-out, two sintering
  zones): relative density follows the master sintering curve, a sigmoid in ln Θ with the work of
  sintering Θ = Σ_z t_z · exp(−Q/RT_z) / T_z over each zone's dwell t_z = zone length / belt speed; oxygen
  in the atmosphere above its base level costs density (a leak lets air in); linear shrinkage follows
  from the density, s = 1 − (D_green/D)^(1/3). Heater power holds each zone against its losses.

Hidden parameters (feeder efficiency, true density, Heckel K and A, the curve's Q and shape, the oxygen
penalty, heater efficiency) live here and nowhere else. The furnace is quasi-steady: a part's density
follows the zones' present state, not its own passage (the dwell of 60 minutes is shorter than the drifts
scored). Like ``PilotLine``, all randomness is drawn from one seeded generator in a fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from plant.disturbances import Daily, Disturbed, Moves, Realism, Wander
from plant.recording import DEFAULT_START
from plant.scenarios import ONSET_S, Expectation, Fault, Scenario
from plant.trials import SetpointWrite

R = 8.314  # J/(mol K)
FILM_WIDTH_MM = 250.0
FILM_ROLL_M = 300.0
TAPE_LENGTH_M = 100.0
GREEN_DENSITY = 0.55  # relative density of the tape-cast green sheet
GREEN_THICKNESS_UM = 60.0
ZONE_LENGTH_M = 1.0
ZONES = (1, 2, 3)
AMBIENT_C = 25.0
O2_BASE_PPM = 20.0
ROLL_TAU_S = 300.0
ZONE_TAU_S = 600.0
SPRINGBACK = 0.04

RECIPE: dict[str, float] = {
    "press1.powder_feed_setpoint": 250.0,  # g/min: 25 mg/cm² at 250 mm and 4 m/min
    "press1.line_speed_setpoint": 4.0,
    "press1.line_load_setpoint": 1500.0,
    "press1.roll_temperature_setpoint": 120.0,
    "furnace1.zone1_setpoint": 600.0,
    "furnace1.zone2_setpoint": 1100.0,
    "furnace1.zone3_setpoint": 1200.0,
    "furnace1.belt_speed_setpoint": 50.0,  # mm/min: 20 minutes per 1 m zone
}
#: The solid-state line's in-control disturbances when realistic: the feeder's delivery and the zone
#: heat balances wander, the hall's day moves the press roll by ±1 °C, the O₂ baseline wanders by ~1 ppm,
#: the operator moves feed with line speed (±5 %, the loading stays) every ~3 h and the belt speed (±3 %)
#: every ~4 h. No lots: the powder's lot properties are not measured at this line.
REALISM = Realism(
    process=(
        Wander("feed_efficiency", 0.002, 1800.0),
        *(Wander(f"zone{z}_offset", 1.0, 2400.0) for z in (1, 2, 3)),
        Daily("roll_temperature_offset", 1.0),
        Wander("o2_leak", 1.0, 1800.0),
    ),
    moves=(
        Moves(("press1.powder_feed_setpoint", "press1.line_speed_setpoint"), 0.05, 3 * 3600.0),
        Moves(("furnace1.belt_speed_setpoint",), 0.03, 4 * 3600.0),
    ),
)
RECIPE_ZONES = tuple(RECIPE[f"furnace1.zone{z}_setpoint"] for z in ZONES)
LIMITS: dict[str, tuple[float, float]] = {
    "press1.powder_feed_setpoint": (0.0, 600.0),
    "press1.line_speed_setpoint": (0.5, 10.0),
    "press1.line_load_setpoint": (0.0, 3000.0),
    "press1.roll_temperature_setpoint": (20.0, 180.0),
    **{f"furnace1.zone{z}_setpoint": (20.0, 1300.0) for z in ZONES},
    "furnace1.belt_speed_setpoint": (10.0, 200.0),
}


@dataclass(frozen=True, slots=True)
class Hidden:
    """What the plant knows and the twin must learn from data."""

    feed_efficiency: float
    gauge_offset: float
    rho_true: float
    heckel_k: float  # 1/(N/mm) at 120 Cel
    heckel_k_per_c: float  # relative change of K per Cel of roll temperature
    heckel_a: float
    activation_kj: float  # Q of the master sintering curve
    msc_centre: float  # ln Θ at the sigmoid's midpoint
    msc_width: float
    max_density: float
    o2_penalty: float  # relative density lost per ppm O2 above base
    heater_efficiency: tuple[float, ...]

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Hidden:
        activation = 400.0 * float(rng.normal(1.0, 0.01))
        # the tape is formulated to sinter to ~96 % at the recipe: the curve's midpoint sits below it
        recipe = math.log(work_of_sintering(RECIPE_ZONES, RECIPE["furnace1.belt_speed_setpoint"], activation))
        return cls(
            feed_efficiency=0.99 + float(rng.normal(0.0, 0.002)),
            gauge_offset=float(rng.normal(0.0, 0.03)),
            rho_true=4.6 * float(rng.normal(1.0, 0.005)),
            heckel_k=6.1e-4 * float(rng.normal(1.0, 0.01)),
            heckel_k_per_c=0.004,
            heckel_a=0.6,
            activation_kj=activation,
            msc_centre=recipe - 1.7 + float(rng.normal(0.0, 0.05)),
            msc_width=0.6,
            max_density=0.985,
            o2_penalty=4e-5,
            heater_efficiency=tuple(0.8 + float(v) for v in rng.normal(0.0, 0.01, 3)),
        )


def areal_loading(feed_g_min: float, width_mm: float, speed_m_min: float) -> float:
    """m_A (mg/cm²) = feed / (W·v): 1 g/min over 1 mm × 1 m/min is 100 mg/cm²."""
    return 100.0 * feed_g_min / (width_mm * speed_m_min)


def heckel_density(load: float, k: float, a: float) -> float:
    """Relative density D from ln(1/(1 − D)) = k·q_L + a."""
    return 1.0 - math.exp(-(k * load + a))


def work_of_sintering(zones_c: Sequence[float], belt_mm_min: float, activation_kj: float) -> float:
    """Θ = Σ_z t_z·exp(−Q/RT_z)/T_z (s/K) with t_z the zone's dwell at this belt speed."""
    dwell_s = ZONE_LENGTH_M * 1000.0 / max(belt_mm_min, 1e-6) * 60.0
    q = activation_kj * 1000.0
    return sum(dwell_s * math.exp(-q / (R * (t + 273.15))) / (t + 273.15) for t in zones_c)


def msc_density(theta: float, centre: float, width: float, maximum: float) -> float:
    """The master sintering curve: relative density, a sigmoid in ln Θ from the green density."""
    return GREEN_DENSITY + (maximum - GREEN_DENSITY) / (1.0 + math.exp(-(math.log(theta) - centre) / width))


def shrinkage(density: float) -> float:
    """Linear shrinkage from the green to the sintered density (isotropic, mass kept)."""
    return 1.0 - (GREEN_DENSITY / density) ** (1.0 / 3.0)


@dataclass(slots=True)
class SolidStateTick:
    t: float
    values: dict[str, float]
    text: dict[str, str]
    onsets: list[Fault]


class SolidStateLine:
    """The press and the furnace, advanced tick by tick; setpoints written by name like ``PilotLine``."""

    def __init__(self, scenario: Scenario, seed: int, realistic: bool = False) -> None:
        self.scenario = scenario
        self.rng = np.random.default_rng([seed, 7])
        #: in-control disturbances of a real line (``plant.disturbances``), or the clean simulator
        self.disturbed = Disturbed(REALISM, seed) if realistic else None
        self.hidden = Hidden.draw(self.rng)
        self.setpoints = dict(RECIPE)
        self.t = 0.0
        self._roll_temperature = self.setpoints["press1.roll_temperature_setpoint"]
        self._zones = [self.setpoints[f"furnace1.zone{z}_setpoint"] for z in ZONES]
        self._film_m = 0.0
        self._tape_m = 0.0
        self._announced: set[str] = set()

    def write_setpoint(self, column: str, value: float) -> None:
        low, high = LIMITS.get(column, (math.nan, math.nan))
        if not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{column}={value} is not a setpoint or outside [{low}, {high}]")
        self.setpoints[column] = float(value)

    def _fault(self, parameter: str, t: float) -> float:
        """The faults' offset of a hidden parameter, and the in-control disturbance's when realistic."""
        faults = sum(f.level(t) for f in self.scenario.faults if f.parameter == parameter)
        return faults + (self.disturbed.level(parameter) if self.disturbed is not None else 0.0)

    def step(self, dt: float) -> SolidStateTick:
        self.t += dt
        t = self.t
        if self.disturbed is not None:
            self.disturbed.advance(t)
            self.disturbed.move(RECIPE, self.write_setpoint)
        values: dict[str, float] = dict(self.setpoints)
        text: dict[str, str] = {}
        noise = self.rng.standard_normal(24)
        self._press(t, dt, noise, values, text)
        self._furnace(t, dt, noise, values, text)
        if self.disturbed is not None:
            self.disturbed.sense(dt, values)
        onsets = [f for f in self.scenario.faults if f.onset_s <= t and f.name not in self._announced]
        self._announced.update(f.name for f in onsets)
        return SolidStateTick(t, values, text, onsets)

    def _press(
        self, t: float, dt: float, noise: np.ndarray, values: dict[str, float], text: dict[str, str]
    ) -> None:
        h, sp = self.hidden, self.setpoints
        feed = sp["press1.powder_feed_setpoint"] * (h.feed_efficiency + self._fault("feed_efficiency", t))
        feed *= 1 + 0.001 * noise[0]
        speed = sp["press1.line_speed_setpoint"] * (1 + 0.0005 * noise[1])
        target = sp["press1.roll_temperature_setpoint"] + self._fault("roll_temperature_offset", t)
        self._roll_temperature += (1 - math.exp(-dt / ROLL_TAU_S)) * (target - self._roll_temperature)
        load = sp["press1.line_load_setpoint"]
        k = h.heckel_k * (1 + h.heckel_k_per_c * (self._roll_temperature - 120.0))
        density = heckel_density(load, k, h.heckel_a)
        loading = areal_loading(feed, FILM_WIDTH_MM, speed)
        thickness = 10.0 * loading / (h.rho_true * density)
        self._film_m += speed * dt / 60.0
        gauge = loading + h.gauge_offset + 0.08 * noise[2]
        measured = thickness + 0.3 * noise[3]
        values["press1.powder_feed"] = feed + 0.3 * noise[4]
        values["press1.line_speed"] = speed + 0.003 * noise[5]
        values["press1.film_width"] = FILM_WIDTH_MM + 0.05 * noise[6]
        values["press1.roll_temperature"] = self._roll_temperature + 0.2 * noise[7]
        values["press1.line_load"] = load + 3.0 * noise[8]
        values["press1.roll_gap"] = thickness * (1 - SPRINGBACK) + 0.5 * noise[9]
        hall = self.disturbed.hall(AMBIENT_C) if self.disturbed is not None else AMBIENT_C
        values["press1.ambient_temperature"] = hall + 0.1 * noise[23]
        values["press1.areal_loading"] = gauge
        values["press1.film_thickness"] = measured
        values["press1.film_density"] = 10.0 * gauge / measured
        values["press1.roll_position"] = self._film_m % FILM_ROLL_M
        text["press1.roll_id"] = f"DRY-{int(self._film_m // FILM_ROLL_M) + 1:05d}"

    def _furnace(
        self, t: float, dt: float, noise: np.ndarray, values: dict[str, float], text: dict[str, str]
    ) -> None:
        h, sp = self.hidden, self.setpoints
        alpha = 1 - math.exp(-dt / ZONE_TAU_S)
        bias = self._fault("zone3_thermocouple_bias", t)
        for i, z in enumerate(ZONES):
            # the controller holds the thermocouple's reading at setpoint (a weak heater bank cannot)
            offset = self._fault(f"zone{z}_offset", t)
            self._zones[i] += alpha * (sp[f"furnace1.zone{z}_setpoint"] + offset - self._zones[i])
        actual = [reading - (bias if z == 3 else 0.0) for z, reading in zip(ZONES, self._zones, strict=True)]
        belt = (
            sp["furnace1.belt_speed_setpoint"]
            * (1 + self._fault("belt_speed_error", t))
            * (1 + 0.001 * noise[10])
        )
        o2 = O2_BASE_PPM + self._fault("o2_leak", t) + 0.5 * noise[11]
        theta = work_of_sintering(actual, belt, h.activation_kj)
        density = msc_density(theta, h.msc_centre, h.msc_width, h.max_density)
        density -= h.o2_penalty * max(o2 - O2_BASE_PPM, 0.0)
        self._tape_m += belt * dt / 60000.0
        for i, z in enumerate(ZONES):
            values[f"furnace1.zone{z}_temperature"] = self._zones[i] + 0.5 * noise[12 + i]
            loss = 0.004 * (actual[i] - AMBIENT_C)  # kW: radiation and conduction of the zone
            values[f"furnace1.zone{z}_power"] = loss / h.heater_efficiency[i] * (1 + 0.005 * noise[15 + i])
        values["furnace1.belt_speed"] = belt + 0.05 * noise[18]
        values["furnace1.o2"] = o2
        values["furnace1.dew_point"] = -45.0 + 0.3 * noise[19]
        values["furnace1.relative_density"] = 100.0 * density + 0.15 * noise[20]
        values["furnace1.shrinkage"] = 100.0 * shrinkage(density) + 0.05 * noise[21]
        values["furnace1.sintered_thickness"] = (
            GREEN_THICKNESS_UM * (1 - shrinkage(density)) + 0.2 * noise[22]
        )
        values["furnace1.tape_position"] = self._tape_m % TAPE_LENGTH_M
        text["furnace1.roll_id"] = f"SEP-{int(self._tape_m // TAPE_LENGTH_M) + 1:05d}"


def _fault(
    name: str,
    machine: str,
    parameter: str,
    magnitude: float,
    unit: str,
    ramp_s: float,
    signals: tuple[str, ...],
    signature: str,
    expected: tuple[Expectation, ...],
) -> Fault:
    return Fault(name, machine, parameter, magnitude, unit, ONSET_S, ramp_s, signals, signature, expected)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("nominal", "steady production of film and separator tape at recipe setpoints"),
        Scenario(
            "press-feed-drift",
            "the powder feeder's screw wears: it delivers less than set, the film gets lighter and thinner",
            (
                _fault(
                    "press-feed-drift",
                    "press1",
                    "feed_efficiency",
                    -0.04,
                    "fraction",
                    2 * 3600.0,
                    ("press1.powder_feed", "press1.areal_loading", "press1.film_thickness"),
                    "powder_feed, areal_loading and film_thickness fall by 4 % at constant setpoint",
                    (
                        Expectation("press1.powder_feed", -0.04, 0.008),
                        Expectation("press1.areal_loading", -0.04, 0.008),
                    ),
                ),
            ),
        ),
        Scenario(
            "press-roll-heating",
            "the press's roll heating overshoots: the binder softens, the film presses denser and thinner",
            (
                _fault(
                    "press-roll-heating",
                    "press1",
                    "roll_temperature_offset",
                    20.0,
                    "Cel",
                    1800.0,
                    ("press1.roll_temperature", "press1.film_thickness", "press1.film_density"),
                    "roll_temperature +20 Cel, film_thickness -1.9 %",
                    (Expectation("press1.roll_temperature", 20.0, 2.0, relative=False),),
                ),
            ),
        ),
        Scenario(
            "furnace-zone-drift",
            "a heater bank of sintering zone 3 weakens: the zone runs below setpoint, density falls",
            (
                _fault(
                    "furnace-zone-drift",
                    "furnace1",
                    "zone3_offset",
                    -25.0,
                    "Cel",
                    3600.0,
                    ("furnace1.zone3_temperature", "furnace1.relative_density", "furnace1.shrinkage"),
                    "zone3_temperature -25 Cel, relative_density about -2.7 points",
                    (Expectation("furnace1.zone3_temperature", -25.0, 3.0, relative=False),),
                ),
            ),
        ),
        Scenario(
            "furnace-atmosphere-leak",
            "a door seal leaks: oxygen in the sintering atmosphere rises and the garnet sinters less dense",
            (
                _fault(
                    "furnace-atmosphere-leak",
                    "furnace1",
                    "o2_leak",
                    250.0,
                    "ppm",
                    1800.0,
                    ("furnace1.o2", "furnace1.relative_density"),
                    "o2 +250 ppm, relative_density -1 point",
                    (Expectation("furnace1.o2", 250.0, 10.0, relative=False),),
                ),
            ),
        ),
        Scenario(
            "furnace-thermocouple-bias",
            "zone 3's thermocouple drifts and reads 15 Cel high: the zone reads right and runs cold",
            (
                _fault(
                    "furnace-thermocouple-bias",
                    "furnace1",
                    "zone3_thermocouple_bias",
                    15.0,
                    "Cel",
                    1800.0,
                    ("furnace1.relative_density", "furnace1.shrinkage", "furnace1.sintered_thickness"),
                    "zone3_temperature reads at setpoint; relative_density -1.4 points, zone3_power down",
                    (Expectation("furnace1.zone3_temperature", 0.0, 1.0, relative=False),),
                ),
            ),
        ),
    )
}


FURNACE_STEPS = ((1180.0, 50.0), (1220.0, 50.0), (1200.0, 40.0), (1200.0, 60.0))  # (zone 3 Cel, mm/min)
FURNACE_DWELL_S = 900.0


def furnace_trial(
    steps: Sequence[tuple[float, float]] = FURNACE_STEPS,
    dwell_s: float = FURNACE_DWELL_S,
    start_s: float = 0.0,
) -> tuple[SetpointWrite, ...]:
    """Sintering-zone and belt-speed steps (``dwell_s`` each, long against the zone's thermal lag) that
    move the work of sintering both ways, so the curve's activation energy separates from its slope;
    then back to the recipe (as ``plant.trials.calender_trial`` does for the calender)."""
    zone, belt = "furnace1.zone3_setpoint", "furnace1.belt_speed_setpoint"
    writes: list[SetpointWrite] = []
    for k, (temperature, speed) in enumerate(steps):
        writes += [SetpointWrite(start_s + k * dwell_s, zone, temperature)]
        writes += [SetpointWrite(start_s + k * dwell_s, belt, speed)]
    end = start_s + len(steps) * dwell_s
    return (*writes, SetpointWrite(end, zone, RECIPE[zone]), SetpointWrite(end, belt, RECIPE[belt]))


@dataclass
class SolidStateRecording:
    scenario: str
    seed: int
    process: pd.DataFrame
    ground_truth: list[dict[str, object]]
    hidden: Hidden


def record(
    scenario: str | Scenario,
    seed: int,
    duration_s: float,
    tick_s: float = 1.0,
    *,
    start: datetime = DEFAULT_START,
    setpoints: Sequence[SetpointWrite] = (),
    realistic: bool = False,
) -> SolidStateRecording:
    """Run the solid-state line offline and collect its process table, as ``plant.recording.record``."""
    spec = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    line = SolidStateLine(spec, seed, realistic)
    n = round(duration_s / tick_s)
    rows: list[dict[str, float | str]] = []
    truth: list[dict[str, object]] = []
    writes = sorted(setpoints, key=lambda w: w.at_s)
    for _ in range(n):
        while writes and writes[0].at_s <= line.t:
            write = writes.pop(0)
            line.write_setpoint(write.column, write.value)
        tick = line.step(tick_s)
        rows.append({**tick.values, **tick.text})
        truth.extend(f.ground_truth(spec.name, start) for f in tick.onsets)
    index = pd.DatetimeIndex([start + timedelta(seconds=tick_s * (i + 1)) for i in range(n)], name="time")
    process = pd.DataFrame(rows, index=index)
    return SolidStateRecording(spec.name, seed, process[sorted(process.columns)], truth, line.hidden)
