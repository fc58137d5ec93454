"""A line description: one TOML file per pilot line, validated like the settings (``lines/`` ships them).

Every pilot line is built differently, so what a line is lives in this file, not in code: its ISA-95
identity (site, area, line), its process steps in material-flow order (an id, which is the machine name
its samples carry, a kind that names the step model, a display name), each step's signals (the name they
are stored under, the role the step's model gives them, their unit, the recipe's target and spec limits,
and for a writable setpoint its limits and the model input it sets), and the material flow between steps
that genealogy follows (coated roll → calendered roll → cell). Units are checked with ``core.units`` when
the file loads, so a unit nobody can read is an error at start-up.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from core import units
from core.configfile import load_toml
from core.settings import Section

NAME = r"^[a-z][a-z0-9_]*$"


def _repeated(values: list[str]) -> list[str]:
    """The values listed more than once, sorted."""
    return sorted({v for v in values if values.count(v) > 1})


BUILTIN = "pilot-nmc"


class Setpoint(Section):
    """A writable signal: the limits a push must respect and the model input (what-if name) it sets."""

    low: float
    high: float
    input: str = Field(pattern=NAME)

    @model_validator(mode="after")
    def _ordered(self) -> Setpoint:
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        return self


class SignalSpec(Section):
    name: str = Field(pattern=NAME, description="the signal's name in InfluxDB and on the bus")
    role: str | None = Field(None, pattern=NAME, description="what the step model calls it (default: name)")
    unit: str = Field(min_length=1)
    description: str = ""
    key: bool = Field(False, description="shown on the operator's step card, with its trend")
    target: float | None = None
    spec_low: float | None = None
    spec_high: float | None = None
    setpoint: Setpoint | None = None

    @field_validator("unit")
    @classmethod
    def _readable(cls, unit: str) -> str:
        try:
            units.parse(unit)
        except units.UnitError as exc:
            raise ValueError(str(exc)) from None
        return unit

    @model_validator(mode="after")
    def _spec(self) -> SignalSpec:
        low, high = self.spec_low, self.spec_high
        if low is not None and high is not None and not low < high:
            raise ValueError(f"spec_low {low} must be below spec_high {high}")
        self.role = self.role or self.name
        return self


class Step(Section):
    id: str = Field(pattern=NAME, description="the machine name its samples carry")
    kind: str = Field(pattern=NAME, description="the step model: slot_die_coater, calender, formation, ...")
    name: str = ""
    signals: list[SignalSpec] = Field(default_factory=list)

    @field_validator("signals")
    @classmethod
    def _unique(cls, signals: list[SignalSpec]) -> list[SignalSpec]:
        twice = _repeated([s.name for s in signals])
        if twice:
            raise ValueError(f"signals listed twice: {', '.join(twice)}")
        return signals

    def signal(self, name: str) -> SignalSpec | None:
        return next((s for s in self.signals if s.name == name), None)


class Flow(Section):
    """Material moving from one step to the next, which genealogy follows back."""

    source: str = Field(pattern=NAME)
    target: str = Field(pattern=NAME)
    material: str = ""


class LineDescription(Section):
    site: str = Field(min_length=1)
    area: str = Field(min_length=1)
    line: str = Field(min_length=1)
    name: str = ""
    steps: list[Step] = Field(min_length=1)
    flow: list[Flow] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> LineDescription:
        ids = [s.id for s in self.steps]
        twice = _repeated(ids)
        if twice:
            raise ValueError(f"steps listed twice: {', '.join(twice)}")
        unknown = sorted({end for f in self.flow for end in (f.source, f.target)} - set(ids))
        if unknown:
            raise ValueError(f"flow names steps the line does not have: {', '.join(unknown)}")
        for step in self.steps:
            doubled = _repeated([sig.setpoint.input for sig in step.signals if sig.setpoint])
            if doubled:
                raise ValueError(f"step {step.id}: model inputs set by two setpoints: {', '.join(doubled)}")
        return self

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def qualified(self, step_id: str, name: str) -> str:
        """A what-if name (a model input or a quantity) on this line: ``name`` when the step's kind is the
        only one of its kind, ``<step>.<name>`` when two steps share it (an anode and a cathode coater)."""
        step = self.step(step_id)
        kind = step.kind if step is not None else None
        return f"{step_id}.{name}" if sum(s.kind == kind for s in self.steps) > 1 else name

    def setpoints(self) -> dict[str, tuple[Step, SignalSpec]]:
        """What-if input name (``qualified``) -> the step and writable signal that set it."""
        return {
            self.qualified(step.id, sig.setpoint.input): (step, sig)
            for step in self.steps
            for sig in step.signals
            if sig.setpoint is not None
        }


def builtin_path(name: str = BUILTIN) -> Path:
    """A description shipped in ``lines/`` (the simulated line is ``pilot-nmc``)."""
    return Path(str(resources.files("lines").joinpath(f"{name}.toml")))


def load(path: Path | None = None) -> LineDescription:
    """The description at ``path`` (default: the simulated line); errors name file, line and field."""
    return load_toml(path or builtin_path(), LineDescription, "line description")
