"""In-control disturbances of a real plant, for the simulators' ``realistic`` option.

The clean simulators add independent Gaussian noise around a fixed operating point; a twin that is quiet
there has proved little. A real line also has:

- **process disturbances that pass through the physics and the control loops**: a hidden parameter
  (pump efficiency, slurry solids within a lot, a zone's heat balance) wanders as an Ornstein-Uhlenbeck
  (continuous AR(1)) process with a time constant of tens of minutes (``Wander``);
- **raw-material lots**: every few hours a new lot shifts a material property, and the line declares it
  (its recipe value) the moment it is loaded (``Lots``);
- **ambient**: the hall's air follows the day (``Realism.hall_amplitude``), and so do what it reaches, a
  zone's or a roll's heat balance (``Daily``); the machines measure the hall's air, as dry rooms and
  dryers' intake air are measured;
- **operator moves**: setpoint changes within the recipe window at random times, several setpoints
  together where a recipe moves them together (speed with flow, so the loading stays) (``Moves``);
- **sensors**: heavy-tailed noise (Student t), spikes, frozen values and dropouts (``Sensors``).

``Realism`` lists them for one simulator; ``Disturbed`` is its seeded run, asked by the simulator for a
parameter's disturbance at plant time t (added where the simulator adds a fault's), for the declared
lot, for the operator's moves due, and to dress the measured values. Ground truth marks the faults only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

DAY_S = 86_400.0
HALL_C = 22.0  # the hall's mean air temperature


@dataclass(frozen=True, slots=True)
class Wander:
    parameter: str
    sigma: float  # stationary standard deviation, in the parameter's unit
    tau_s: float  # time constant


@dataclass(frozen=True, slots=True)
class Lots:
    parameter: str
    sd: float  # lot-to-lot standard deviation
    every_s: float  # mean time between lots (exponential)


@dataclass(frozen=True, slots=True)
class Daily:
    """A parameter that follows the hall's day: ``amplitude`` at the hall's warmest."""

    parameter: str
    amplitude: float


@dataclass(frozen=True, slots=True)
class Moves:
    setpoints: tuple[str, ...]  # moved together by one relative step
    relative: float  # steps drawn uniformly in ±relative of the recipe value
    every_s: float  # mean time between moves (exponential)


@dataclass(frozen=True, slots=True)
class Sensors:
    dof: int = 3
    tail: float = 0.5  # extra t-noise, in units of the signal's own noise
    spikes_per_day: float = 4.0  # per signal
    spike: float = 8.0  # size, in units of the signal's own noise
    frozen_per_day: float = 1.0
    frozen_s: float = 120.0
    dropouts_per_day: float = 2.0
    dropout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Realism:
    process: tuple[Wander | Lots | Daily, ...] = ()
    moves: tuple[Moves, ...] = ()
    sensors: Sensors = field(default_factory=Sensors)
    #: how far the hall's air swings over the day, °C either side of its mean
    hall_amplitude: float = 2.0
    #: signal names ending so are not sensors (setpoints, roll positions): left as they are
    exempt: tuple[str, ...] = ("setpoint", "position")


class Disturbed:
    """One seeded run of a ``Realism`` (see module); plant time only moves forward."""

    def __init__(self, realism: Realism, seed: int) -> None:
        self.realism = realism
        self.rng = np.random.default_rng([seed, 77])
        self._t = 0.0
        self._wanders = {i: d for i, d in enumerate(realism.process) if isinstance(d, Wander)}
        self._lots = {i: d for i, d in enumerate(realism.process) if isinstance(d, Lots)}
        self._wander = dict.fromkeys(self._wanders, 0.0)
        self._lot_level = dict.fromkeys(self._lots, 0.0)
        self._next_lot = {i: self._wait(d.every_s) for i, d in self._lots.items()}
        self._day_phase = float(self.rng.uniform(0, 2 * math.pi))  # one hall, one day
        self._next_move = [self._wait(m.every_s) for m in realism.moves]
        self.lots = 0
        self._scale: dict[str, float] = {}
        self._seen: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._frozen: dict[str, tuple[float, float]] = {}  # signal -> (until, value)
        self._dropped: dict[str, float] = {}  # signal -> until

    def _wait(self, mean_s: float) -> float:
        return self._t + float(self.rng.exponential(mean_s))

    def advance(self, t: float) -> None:
        """Move the process disturbances to plant time ``t``."""
        dt = t - self._t
        if dt <= 0:
            return
        for i, d in self._wanders.items():
            keep = math.exp(-dt / d.tau_s)
            self._wander[i] = keep * self._wander[i] + d.sigma * math.sqrt(1 - keep * keep) * float(
                self.rng.standard_normal()
            )
        for i, lot in self._lots.items():
            while t >= self._next_lot[i]:
                self._lot_level[i] = float(self.rng.normal(0.0, lot.sd))
                self._next_lot[i] += float(self.rng.exponential(lot.every_s))
                self.lots += 1
        self._t = t

    def level(self, parameter: str) -> float:
        """The disturbance of ``parameter`` now: wander, lot and ambient together."""
        total = 0.0
        for i, d in enumerate(self.realism.process):
            if d.parameter != parameter:
                continue
            if isinstance(d, Wander):
                total += self._wander[i]
            elif isinstance(d, Lots):
                total += self._lot_level[i]
            else:
                total += d.amplitude * self._day()
        return total

    def _day(self) -> float:
        """Where the hall's day is, from −1 (coolest) to 1 (warmest)."""
        return math.sin(2 * math.pi * self._t / DAY_S + self._day_phase)

    def hall(self, mean_c: float = HALL_C) -> float:
        """The hall's air temperature now, °C, around ``mean_c``."""
        return mean_c + self.realism.hall_amplitude * self._day()

    def declared(self, parameter: str) -> float:
        """The lots' part of ``parameter``: what the line declares of the lot it runs."""
        return sum(self._lot_level[i] for i, d in self._lots.items() if d.parameter == parameter)

    def move(self, recipe: dict[str, float], write: Callable[[str, float], None]) -> None:
        """The operator's setpoint moves due by now, each within ±relative of the recipe value."""
        for k, moves in enumerate(self.realism.moves):
            while self._t >= self._next_move[k]:
                factor = 1 + float(self.rng.uniform(-moves.relative, moves.relative))
                for column in moves.setpoints:
                    write(column, recipe[column] * factor)
                self._next_move[k] += float(self.rng.exponential(moves.every_s))

    def sense(self, dt: float, values: dict[str, float]) -> None:
        """Dress the measured values in place: heavy tails, spikes, frozen values, dropouts (NaN)."""
        s = self.realism.sensors
        per_tick = dt / DAY_S
        for name in list(values):
            value = values[name]
            if name.endswith(self.realism.exempt) or not math.isfinite(value):
                continue
            last = self._last.get(name, value)
            self._last[name] = value
            seen = self._seen[name] = self._seen.get(name, 0) + 1
            weight = max(1.0 / seen, 0.01)  # the running mean at first, then an EWMA
            step = abs(value - last) / 1.128  # E|Δ| of independent noise is 1.128 σ
            scale = self._scale[name] = (1 - weight) * self._scale.get(name, 0.0) + weight * step
            if name in self._dropped:
                if self._t < self._dropped[name]:
                    values[name] = math.nan
                    continue
                del self._dropped[name]
            if name in self._frozen:
                until, held = self._frozen[name]
                if self._t < until:
                    values[name] = held
                    continue
                del self._frozen[name]
            draws = self.rng.random(3)
            if draws[0] < s.dropouts_per_day * per_tick:
                self._dropped[name] = self._t + s.dropout_s
                values[name] = math.nan
                continue
            if draws[1] < s.frozen_per_day * per_tick:
                self._frozen[name] = (self._t + s.frozen_s, value)
            tail = float(self.rng.standard_t(s.dof)) / math.sqrt(s.dof / (s.dof - 2))
            value += s.tail * scale * tail
            if draws[2] < s.spikes_per_day * per_tick:
                value += s.spike * scale * (1 if self.rng.random() < 0.5 else -1)
            values[name] = value
