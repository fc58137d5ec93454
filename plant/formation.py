"""Formation cyclers and the aging shelf: cells built from calendered electrode, charged, discharged, aged.

Plant time compresses the slow steps so a shift of production shows its cells the same shift:
one plant second of formation is ``FORMATION_COMPRESSION`` real-equivalent seconds (an ~11.5 h C/5
formation takes ~19 plant minutes), and one day of aging is ``AGING_DAY_S`` plant seconds (the 14-day
OCV series of a cell arrives 14 plant minutes after its formation). Currents, voltages and capacities
are the real-equivalent values; only the clock runs faster.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

from plant import physics

FORMATION_COMPRESSION = 36.0
AGING_DAY_S = 60.0
AGING_DAYS = (0, 2, 4, 6, 8, 10, 12, 14)
CATHODE_AREA_CM2 = 450.0  # ten double-sided 7.5 cm x 3 cm sheets: a ~1.5 Ah pouch cell
X_ACTIVE = 0.955
Q_SPEC_MAH_G = 175.0  # NMC622
FORMATION_CURRENT_A = 0.3  # C/5 of the 1.5 Ah design capacity
CUTOFF_CURRENT_A = 0.075  # C/20 end of the CV step
CHARGE_VOLTAGE = 4.2
CC_SHARE = 0.92  # share of the first charge delivered in the CC step
REST_H = 0.5
CELL_RESISTANCE_OHM = 0.08
STORAGE_OCV = 3.70  # cells go to the aging shelf at ~40 % SOC
CHAMBER_TEMPERATURE = 25.0

STEP_CC_CHARGE, STEP_CV_CHARGE, STEP_REST, STEP_CC_DISCHARGE = 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Material:
    """Where a cell's cathode sheets were cut: the calendered roll and the position along it."""

    roll_id: str
    position_m: float
    loading_mg_cm2: float


@dataclass(slots=True)
class Cell:
    """One cell on a formation channel; hidden truth plus what the cycler measures."""

    cell_id: str
    channel: str
    material: Material
    start_s: float
    capacity_ah: float
    efficiency: float
    k_mv_per_day: float
    micro_short: bool
    calibration: float  # (1 + current calibration offset) of the channel during this formation
    ocv0: float
    # step boundaries in real-equivalent hours since formation start
    t_cc: float = 0.0
    t_cv: float = 0.0
    t_rest: float = 0.0
    t_end: float = 0.0
    tau_cv_h: float = 0.0
    current_a: float = 0.0  # true current (the channel regulates on its miscalibrated reading)
    ocv_readings: list[float] = field(default_factory=list)

    @property
    def first_charge_ah(self) -> float:
        return self.capacity_ah / self.efficiency

    @property
    def end_s(self) -> float:
        return self.start_s + self.t_end * 3600.0 / FORMATION_COMPRESSION

    def plan(self) -> None:
        """Step boundaries of the CC-CV charge, rest and CC discharge program."""
        self.current_a = FORMATION_CURRENT_A / self.calibration
        q = self.first_charge_ah
        self.t_cc = CC_SHARE * q / self.current_a
        cutoff = CUTOFF_CURRENT_A / self.calibration
        # CV current decays as I exp(-t/tau); charge until cutoff is I tau (1 - cutoff/I)
        self.tau_cv_h = (1 - CC_SHARE) * q / (self.current_a - cutoff)
        self.t_cv = self.t_cc + self.tau_cv_h * math.log(self.current_a / cutoff)
        self.t_rest = self.t_cv + REST_H
        self.t_end = self.t_rest + self.capacity_ah / self.current_a

    def state(self, t: float) -> tuple[int, float, float, float]:
        """(step, true current A, voltage V, charge moved in this step Ah) at plant time ``t``."""
        h = max(t - self.start_s, 0.0) * FORMATION_COMPRESSION / 3600.0
        i = self.current_a
        if h < self.t_cc:
            q = i * h
            soc = 0.97 * q / self.first_charge_ah
            return STEP_CC_CHARGE, i, physics.open_circuit_voltage(soc) + i * CELL_RESISTANCE_OHM, q
        if h < self.t_cv:
            dt = h - self.t_cc
            current = i * math.exp(-dt / self.tau_cv_h)
            q = i * self.t_cc + i * self.tau_cv_h * (1 - math.exp(-dt / self.tau_cv_h))
            return STEP_CV_CHARGE, current, CHARGE_VOLTAGE, q
        if h < self.t_rest:
            return STEP_REST, 0.0, physics.open_circuit_voltage(0.97), self.first_charge_ah
        q = min(i * (h - self.t_rest), self.capacity_ah)
        soc = 1.0 - q / self.capacity_ah
        return STEP_CC_DISCHARGE, -i, physics.open_circuit_voltage(soc) - i * CELL_RESISTANCE_OHM, q

    @property
    def charge_capacity(self) -> float:
        """Measured charge capacity (Ah): the true charge seen through the channel's calibration."""
        return self.first_charge_ah * self.calibration

    @property
    def discharge_capacity(self) -> float:
        return self.capacity_ah * self.calibration


def k_value(readings: list[float]) -> float:
    """K-value (mV/d, positive = voltage loss) by least squares over the aging OCV series."""
    days = np.asarray(AGING_DAYS[: len(readings)], dtype=float)
    slope = np.polyfit(days, np.asarray(readings, dtype=float), 1)[0]
    return float(-slope * 1000.0)


@dataclass(frozen=True, slots=True)
class OcvReading:
    """One aging-shelf OCV reading; the last of a cell's series carries its K-value."""

    cell: Cell
    time_s: float
    age_days: float
    ocv: float
    k_value: float | None


class CyclerBank:
    """The channels of cycler1 and the aging shelf behind them.

    A channel loads a new cell the tick its previous formation ends; channel k loads its first cell k - 1
    minutes after plant start so the channels do not run in lockstep.
    """

    def __init__(self, channels: int, rng: np.random.Generator) -> None:
        self.channels = [f"ch{k:02d}" for k in range(1, channels + 1)]
        self._rng = rng
        self._offsets = dict(zip(self.channels, rng.normal(0.0, 0.002, channels), strict=True))
        self.cells: dict[str, Cell | None] = dict.fromkeys(self.channels)
        self._next_load_s = {ch: 60.0 * k for k, ch in enumerate(self.channels)}
        self._shelf: list[tuple[float, int, OcvReading]] = []
        self._cell_count = 0
        self._shelved = 0

    def calibration(self, channel: str, fault_offset: float) -> float:
        return 1.0 + self._offsets[channel] + fault_offset

    def advance(
        self,
        t: float,
        material: Material,
        channel_fault: dict[str, float],
        micro_short_share: float,
    ) -> tuple[list[Cell], list[OcvReading]]:
        """Finish due formations, load new cells, and release due OCV readings at plant time ``t``."""
        finished: list[Cell] = []
        for channel in self.channels:
            cell = self.cells[channel]
            if cell is not None and t >= cell.end_s:
                finished.append(cell)
                self._shelve(cell)
                self.cells[channel] = None
                self._next_load_s[channel] = t
            if self.cells[channel] is None and t >= self._next_load_s[channel]:
                self.cells[channel] = self._build(
                    channel, t, material, channel_fault.get(channel, 0.0), micro_short_share
                )
        readings: list[OcvReading] = []
        while self._shelf and self._shelf[0][0] <= t:
            readings.append(heapq.heappop(self._shelf)[2])
        return finished, readings

    def _build(
        self, channel: str, t: float, material: Material, fault_offset: float, micro_short_share: float
    ) -> Cell:
        rng = self._rng
        self._cell_count += 1
        micro_short = bool(rng.random() < micro_short_share)
        k = float(rng.uniform(4.0, 12.0)) if micro_short else float(rng.lognormal(math.log(0.8), 0.12))
        cell = Cell(
            cell_id=f"CELL-{self._cell_count:06d}",
            channel=channel,
            material=material,
            start_s=t,
            capacity_ah=physics.cell_capacity_ah(
                material.loading_mg_cm2, CATHODE_AREA_CM2, X_ACTIVE, Q_SPEC_MAH_G
            )
            * float(rng.normal(1.0, 0.003)),
            efficiency=float(rng.normal(0.885, 0.006)),
            k_mv_per_day=k,
            micro_short=micro_short,
            calibration=self.calibration(channel, fault_offset),
            ocv0=STORAGE_OCV + float(rng.normal(0.0, 0.003)),
        )
        noise = rng.normal(0.0, 0.0001, len(AGING_DAYS))
        cell.ocv_readings = [
            cell.ocv0 - cell.k_mv_per_day * day / 1000.0 + float(n)
            for day, n in zip(AGING_DAYS, noise, strict=True)
        ]
        cell.plan()
        return cell

    def _shelve(self, cell: Cell) -> None:
        k = k_value(cell.ocv_readings)
        last = len(AGING_DAYS) - 1
        for index, (day, ocv) in enumerate(zip(AGING_DAYS, cell.ocv_readings, strict=True)):
            time_s = cell.end_s + day * AGING_DAY_S
            reading = OcvReading(cell, time_s, float(day), ocv, k if index == last else None)
            self._shelved += 1
            heapq.heappush(self._shelf, (time_s, self._shelved, reading))


@dataclass(frozen=True, slots=True)
class CyclerSample:
    """What a channel reports at one instant (current and capacity through its calibration)."""

    cell_id: str
    step: int
    voltage: float
    current: float
    temperature: float
    capacity: float


def sample(cell: Cell, t: float, rng: np.random.Generator) -> CyclerSample:
    """The channel's reading of ``cell`` at plant time ``t``, with measurement noise from ``rng``."""
    step, current, voltage, charge = cell.state(t)
    noise = rng.standard_normal(3)
    return CyclerSample(
        cell_id=cell.cell_id,
        step=step,
        voltage=voltage + 0.001 * float(noise[0]),
        current=current * cell.calibration + 0.0002 * float(noise[1]),
        temperature=CHAMBER_TEMPERATURE + 1.5 * abs(current) + 0.05 * float(noise[2]),
        capacity=charge * cell.calibration,
    )
