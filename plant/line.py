"""The pilot line as a deterministic state machine: coater + dryer -> calender -> formation cyclers.

``PilotLine.step(dt)`` advances plant time by one tick and returns every value the machines report at
that instant. It draws all randomness from one seeded numpy Generator in a fixed order, so the same
seed, scenario and setpoint history give identical data, whether a server publishes the ticks or the
offline recorder collects them. Hidden parameters (pump efficiency, true solids, gauge offset, lane
profile, compaction resistance, roll expansion, channel calibration) live here and nowhere else.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from plant import physics
from plant.disturbances import HALL_C, Daily, Disturbed, Lots, Moves, Realism, Wander
from plant.formation import Cell, CyclerBank, Material, OcvReading
from plant.scenarios import Fault, Scenario
from plant.signals import SIGNALS, Signal

TARGET_LOADING = 20.0  # mg/cm2, NMC622 cathode
LOADING_TOLERANCE = 0.02
CROSS_WEB_TOLERANCE = 0.015  # lane deviation from the cross-web mean
TARGET_POROSITY = 0.30
POROSITY_TOLERANCE = 0.02  # absolute
RECIPE_SOLIDS = 0.70
NOMINAL_PUMP_EFFICIENCY = 0.975
COATING_WIDTH_MM = 300.0
SLOT_GAP_UM = 250.0
ROLL_LENGTH_M = 200.0
TRANSPORT_M = 30.0  # web path from the coater's gauge to the calender nip
DRYER_ZONE_LENGTH_M = 2.0
DRYER_TAU_S = 120.0
ROLL_TAU_S = 300.0
EPS_0 = 0.48
EPS_MIN = 0.20
GAMMA_T_REF = 50.0
GAMMA_BETA = 0.01  # 1/K
ROLL_RADIUS_MM = 100.0
ROLL_ALPHA = 11.5e-6  # 1/K, steel
SPRINGBACK = 0.03
GAUGE_STANDARDISE_EVERY_S = 7200.0
GAUGE_STANDARDISE_S = 60.0

# Plant setpoints a recipe starts from; the pump flow is the one that coats the target loading.
RECIPE_SETPOINTS: dict[str, float] = {
    "coater1.pump_flow_setpoint": round(
        physics.flow_for_loading(
            TARGET_LOADING, COATING_WIDTH_MM, 2.0, physics.slurry_density(RECIPE_SOLIDS), RECIPE_SOLIDS
        )
        / NOMINAL_PUMP_EFFICIENCY,
        2,
    ),
    "coater1.web_speed_setpoint": 2.0,
    "coater1.dryer_zone1_setpoint": 80.0,
    "coater1.dryer_zone2_setpoint": 110.0,
    "coater1.dryer_zone3_setpoint": 130.0,
    "calender1.line_load_setpoint": 800.0,
    "calender1.roll_temperature_setpoint": 50.0,
}
SETPOINT_SIGNALS: dict[str, Signal] = {s.column: s for s in SIGNALS if s.setpoint}

#: The pilot line's in-control disturbances when realistic: the pump's delivery and the solids within a
#: lot wander, a lot every ~4 h declares new solids (±0.4 points), the hall's day moves dryer zone 2 and
#: the calender roll by ±1 °C, the operator moves speed with flow (±5 %, the loading stays) every ~3 h
#: and the line load (±3 %) every ~4 h; sensors as ``plant.disturbances.Sensors``.
REALISM = Realism(
    process=(
        Wander("pump_efficiency", 0.002, 1800.0),
        Wander("true_solids", 0.0005, 3600.0),
        Lots("true_solids", 0.004, 4 * 3600.0),
        Daily("dryer_zone2_offset", 1.0),
        Daily("roll_temperature_offset", 1.0),
    ),
    moves=(
        Moves(("coater1.web_speed_setpoint", "coater1.pump_flow_setpoint"), 0.05, 3 * 3600.0),
        Moves(("calender1.line_load_setpoint",), 0.03, 4 * 3600.0),
    ),
)


@dataclass(frozen=True, slots=True)
class Hidden:
    """What the plant knows and the twin must learn from data."""

    pump_efficiency: float
    true_solids: float
    gauge_offset: float
    lane_bias: tuple[float, ...]
    dose_constant: float
    gamma_ref: float
    eps_0: float
    inlet_gauge_offset: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Hidden:
        lanes = rng.normal(0.0, 0.0025, 5)
        return cls(
            pump_efficiency=NOMINAL_PUMP_EFFICIENCY + float(rng.normal(0.0, 0.001)),
            true_solids=RECIPE_SOLIDS + float(rng.normal(0.0, 0.0005)),
            gauge_offset=float(rng.normal(0.0, 0.02)),
            lane_bias=tuple(float(b) for b in lanes - lanes.mean()),
            dose_constant=28.0 * float(rng.normal(1.0, 0.02)),
            gamma_ref=800.0
            / math.log((EPS_0 - EPS_MIN) / (TARGET_POROSITY - EPS_MIN))
            * float(rng.normal(1.0, 0.01)),
            eps_0=EPS_0 + float(rng.normal(0.0, 0.002)),
            inlet_gauge_offset=float(rng.normal(0.0, 0.02)),
        )


@dataclass(frozen=True, slots=True)
class Web:
    """A slice of coated web on its way from the coater to the calender."""

    distance_m: float
    roll_id: str
    position_m: float
    loading: float  # true dry loading, mg/cm2
    residual_solvent: float  # wt%


@dataclass(slots=True)
class Tick:
    """Everything the line reports at one plant instant."""

    t: float
    values: dict[str, float]
    text: dict[str, str]
    gauge_ok: bool
    formed: list[Cell] = field(default_factory=list)
    ocv: list[OcvReading] = field(default_factory=list)
    onsets: list[Fault] = field(default_factory=list)


class SetpointError(ValueError):
    """A setpoint write the plant refuses: unknown name or outside its range."""


class PilotLine:
    """Coater with dryer and gauge, inline calender, cycler bank; advanced tick by tick."""

    def __init__(
        self, scenario: Scenario, seed: int, cycler_channels: int = 16, realistic: bool = False
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        #: in-control disturbances of a real line (``plant.disturbances``), or the clean simulator
        self.disturbed = Disturbed(REALISM, seed) if realistic else None
        self.rng = np.random.default_rng(seed)
        self.hidden = Hidden.draw(self.rng)
        self.cyclers = CyclerBank(cycler_channels, np.random.default_rng([seed, 1]))
        self.setpoints = dict(RECIPE_SETPOINTS)
        self.t = 0.0
        self._zones = [self.setpoints[f"coater1.dryer_zone{z}_setpoint"] for z in (1, 2, 3)]
        self._roll_temperature = self.setpoints["calender1.roll_temperature_setpoint"]
        self._distance_m = 0.0
        self._roll = 1
        self._roll_start_m = 0.0
        self._web: deque[Web] = deque()
        self._held_gauge: dict[str, float] = {}
        self._announced: set[str] = set()
        self._prefill_web()

    # -- setpoints -------------------------------------------------------------------------------------

    def write_setpoint(self, column: str, value: float) -> None:
        """Change a setpoint; SetpointError if unknown or outside the signal's range."""
        signal = SETPOINT_SIGNALS.get(column)
        if signal is None:
            raise SetpointError(f"{column} is not a setpoint")
        if not (math.isfinite(value) and signal.low <= value <= signal.high):
            raise SetpointError(f"{column}={value} outside [{signal.low}, {signal.high}] {signal.unit}")
        self.setpoints[column] = float(value)

    # -- faults ----------------------------------------------------------------------------------------

    def _fault(self, parameter: str, t: float) -> float:
        """The faults' offset of a hidden parameter, and the in-control disturbance's when realistic."""
        faults = sum(f.level(t) for f in self.scenario.faults if f.parameter == parameter)
        return faults + (self.disturbed.level(parameter) if self.disturbed is not None else 0.0)

    def _hall(self) -> float:
        """The hall's air temperature: its day when realistic, else constant."""
        return self.disturbed.hall() if self.disturbed is not None else HALL_C

    def _channel_faults(self, t: float) -> dict[str, float]:
        return {
            f.channel: f.level(t)
            for f in self.scenario.faults
            if f.parameter == "current_calibration_offset" and f.channel is not None
        }

    # -- the tick --------------------------------------------------------------------------------------

    def step(self, dt: float) -> Tick:
        """Advance plant time by ``dt`` seconds and report every machine's values."""
        self.t += dt
        t = self.t
        if self.disturbed is not None:
            self.disturbed.advance(t)
            self.disturbed.move(RECIPE_SETPOINTS, self.write_setpoint)
        values: dict[str, float] = dict(self.setpoints)
        text: dict[str, str] = {}
        noise = self.rng.standard_normal(32)
        web = self._coat(t, dt, noise, values, text)
        gauge_ok = self._gauge(t, web, noise, values)
        material = self._calender(t, dt, noise, values, text)
        if self.disturbed is not None:
            self.disturbed.sense(dt, values)
        formed, ocv = self.cyclers.advance(
            t, material, self._channel_faults(t), self._fault("micro_short_share", t)
        )
        onsets = [f for f in self.scenario.faults if f.onset_s <= t and f.name not in self._announced]
        self._announced.update(f.name for f in onsets)
        return Tick(t, values, text, gauge_ok, formed, ocv, onsets)

    def _coat(
        self, t: float, dt: float, noise: np.ndarray, values: dict[str, float], text: dict[str, str]
    ) -> Web:
        h = self.hidden
        sp = self.setpoints
        speed = sp["coater1.web_speed_setpoint"] * (1 + 0.0005 * noise[0])
        flow = sp["coater1.pump_flow_setpoint"] * (h.pump_efficiency + self._fault("pump_efficiency", t))
        flow *= 1 + 0.001 * noise[1]
        solids = h.true_solids + self._fault("true_solids", t)
        density = physics.slurry_density(solids)
        loading = physics.dry_loading_mg_cm2(flow, COATING_WIDTH_MM, speed, density, solids)
        alpha = 1 - math.exp(-dt / DRYER_TAU_S)
        offsets = (0.0, self._fault("dryer_zone2_offset", t), 0.0)
        for z in range(3):
            target = sp[f"coater1.dryer_zone{z + 1}_setpoint"] + offsets[z]
            self._zones[z] += alpha * (target - self._zones[z])
        dose = physics.drying_dose(tuple(self._zones), DRYER_ZONE_LENGTH_M, speed)
        residual = physics.residual_solvent_pct(dose, solids, h.dose_constant)
        self._distance_m += speed * dt / 60.0
        if self._distance_m - self._roll_start_m >= ROLL_LENGTH_M:
            self._roll += 1
            self._roll_start_m = self._distance_m
        web = Web(self._distance_m, self.roll_id, self._distance_m - self._roll_start_m, loading, residual)
        self._web.append(web)
        values["coater1.pump_flow"] = flow + 0.2 * noise[2]
        values["coater1.web_speed"] = speed + 0.003 * noise[3]
        values["coater1.coating_width"] = COATING_WIDTH_MM + 0.05 * noise[4]
        values["coater1.slot_gap"] = SLOT_GAP_UM + 0.5 * noise[5]
        declared = self.disturbed.declared("true_solids") if self.disturbed is not None else 0.0
        values["coater1.slurry_solids"] = 100 * (RECIPE_SOLIDS + declared) + 0.03 * noise[6]
        values["coater1.slurry_density"] = density + 0.002 * noise[7]
        for z in range(3):
            values[f"coater1.dryer_zone{z + 1}_temperature"] = self._zones[z] + 0.3 * noise[8 + z]
        values["coater1.residual_solvent"] = max(residual + 0.005 * noise[11], 0.0)
        values["coater1.web_tension"] = 120.0 + 1.0 * noise[12]
        values["coater1.ambient_temperature"] = self._hall() + 0.1 * noise[24]
        values["coater1.roll_position"] = web.position_m
        text["coater1.roll_id"] = web.roll_id
        text["coater1.state"] = "running"
        return web

    def _gauge(self, t: float, web: Web, noise: np.ndarray, values: dict[str, float]) -> bool:
        """Beta gauge: lanes of the cross-web profile; holds its last values while it standardises."""
        standardising = (t % GAUGE_STANDARDISE_EVERY_S) >= GAUGE_STANDARDISE_EVERY_S - GAUGE_STANDARDISE_S
        if standardising and self._held_gauge:
            values.update(self._held_gauge)
            return False
        h = self.hidden
        reading = web.loading * (1 + web.residual_solvent / 100.0) + h.gauge_offset
        lanes = [reading * (1 + h.lane_bias[k]) + 0.06 * noise[13 + k] for k in range(5)]
        gauge = {f"coater1.profile_lane{k + 1}": lane for k, lane in enumerate(lanes)}
        gauge["coater1.dry_loading"] = sum(lanes) / 5
        self._held_gauge = gauge
        values.update(gauge)
        return True

    def _calender(
        self, t: float, dt: float, noise: np.ndarray, values: dict[str, float], text: dict[str, str]
    ) -> Material:
        h = self.hidden
        sp = self.setpoints
        while len(self._web) > 1 and self._web[1].distance_m <= self._distance_m - TRANSPORT_M:
            self._web.popleft()
        web = self._web[0]
        target = sp["calender1.roll_temperature_setpoint"] + self._fault("roll_temperature_offset", t)
        self._roll_temperature += (1 - math.exp(-dt / ROLL_TAU_S)) * (target - self._roll_temperature)
        bias = self._fault("load_cell_bias", t)
        true_load = sp["calender1.line_load_setpoint"] - bias
        gamma = physics.compaction_resistance(h.gamma_ref, self._roll_temperature, GAMMA_T_REF, GAMMA_BETA)
        eps = physics.porosity(true_load, h.eps_0, EPS_MIN, gamma)
        thickness = physics.coating_thickness_um(web.loading, eps, physics.SOLIDS_DENSITY)
        expansion = physics.roll_expansion_um(self._roll_temperature, GAMMA_T_REF, ROLL_RADIUS_MM, ROLL_ALPHA)
        inlet = web.loading * (1 + web.residual_solvent / 100.0) + h.inlet_gauge_offset + 0.03 * noise[18]
        measured_thickness = thickness + 0.15 * noise[19]
        values["calender1.incoming_loading"] = inlet
        values["calender1.line_load"] = true_load + bias + 2.0 * noise[20]
        values["calender1.roll_gap"] = thickness * (1 - SPRINGBACK) + 2 * expansion + 0.5 * noise[21]
        values["calender1.roll_temperature"] = self._roll_temperature + 0.2 * noise[22]
        values["calender1.speed"] = values["coater1.web_speed"] + 0.003 * noise[23]
        values["calender1.thickness"] = measured_thickness
        values["calender1.porosity"] = 100 * physics.porosity_from_thickness(
            inlet, measured_thickness, physics.SOLIDS_DENSITY
        )
        values["calender1.ambient_temperature"] = self._hall() + 0.1 * noise[25]
        values["calender1.roll_position"] = web.position_m
        text["calender1.roll_id"] = web.roll_id
        text["calender1.state"] = "running"
        return Material(web.roll_id, round(web.position_m, 2), web.loading)

    @property
    def roll_id(self) -> str:
        return f"CAT-{self._roll:05d}"

    def _prefill_web(self) -> None:
        """Start warm: the web between coater and calender was coated at recipe before plant time 0."""
        speed = self.setpoints["coater1.web_speed_setpoint"]
        solids = self.hidden.true_solids
        loading = physics.dry_loading_mg_cm2(
            self.setpoints["coater1.pump_flow_setpoint"] * self.hidden.pump_efficiency,
            COATING_WIDTH_MM,
            speed,
            physics.slurry_density(solids),
            solids,
        )
        dose = physics.drying_dose(tuple(self._zones), DRYER_ZONE_LENGTH_M, speed)
        residual = physics.residual_solvent_pct(dose, solids, self.hidden.dose_constant)
        step = 0.5
        for k in range(int(TRANSPORT_M / step)):
            distance = step * k
            self._web.append(Web(distance, "CAT-00000", distance, loading, residual))
        self._distance_m = TRANSPORT_M
        self._roll_start_m = TRANSPORT_M
