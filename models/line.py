"""The streaming model of one line: the step models its description names, composed along its flow.

Each step of the line description gets the model registered for its kind (``models.steps``; a kind
without one gets the generic monitoring), so two coaters get two coater models and a step nobody modelled
still counts. This class does what is about the line rather than a step:
- it renames each sample's signal to the role the description gives it and converts its value from the
  stored unit into the unit the kind's physics works in (``core.units``; an inconvertible pair is an
  error when the model is built, never wrong numbers later), and names and converts the step models'
  outputs and findings back. A step whose description lacks a role its kind's model needs (a line being
  mapped) runs the generic monitoring, and ``unmodelled`` says why;
- it assembles a machine's samples into ticks (all values of one source time) and routes a cycler's
  samples to its step by cell;
- it links every step to the steps upstream of it along the material flow, which genealogy follows
  (a cell's capacity against the loading its electrode was coated with) and which keeps consequential
  alarms quiet: a step's causes that follow from an upstream fault (``StepModel.consequential``) are not
  raised while a finding of an upstream step is active;
- it raises a condition once per ``realarm_s`` and keeps all state as plain data (``snapshot``/``restore``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from core import linedesc, units
from core.errors import ConfigError
from core.linedesc import LineDescription
from core.records import ModelOutput, Parameter
from core.sample import Sample
from models.rootcause import Finding
from models.steps import StepModel, StepSpec, Tuning, model_class
from models.steps.generic import GenericStep

#: Bumped when the model's state gains what an older snapshot cannot supply (2: channel references;
#: 3: calibrated ranges and the compaction law anchored on its priors; 4: one state per step model;
#: 5: the raised findings with their consequences)
SNAPSHOT_VERSION = 7


def _reading(value: Any) -> bool:
    """A number that is a reading: NaN in a wide table means that signal has none at this tick."""
    number = isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
    return number and math.isfinite(value)


def _finding(saved: Mapping[str, Any]) -> Finding:
    """A raised finding from its snapshot (JSON turned its tuples into lists)."""
    data = dict(saved)
    for name in ("moving", "affected"):
        data[name] = tuple(data[name])
    for name in ("rolls", "cells"):
        data[name] = list(data[name])
    return Finding(**data)


class _Step:
    """A step model with its description's names and unit conversions both ways."""

    def __init__(
        self,
        model: StepModel,
        names: Mapping[str, str],
        into: Mapping[str, units.Conversion],
        stored_units: Mapping[str, str],
    ) -> None:
        self.model = model
        self.units = dict(stored_units)  # role -> the unit the line stores it in
        self.role = dict(names)  # stored name -> role
        self.name = {role: name for name, role in names.items()}  # role -> stored name
        self.into = dict(into)  # stored name -> conversion into the role's unit
        self.back = {names[n]: c for n, c in into.items()}  # role -> conversion its unit came from

    def values(self, named: Mapping[str, float]) -> dict[str, float]:
        """Stored names and units -> roles and the kind's units."""
        out = {}
        for name, value in named.items():
            conversion = self.into.get(name)
            out[self.role.get(name, name)] = conversion(value) if conversion is not None else value
        return out

    def output(self, value: ModelOutput) -> ModelOutput:
        name = self.name.get(value.signal, value.signal)
        conversion = self.back.get(value.signal)
        if value.kind != "predicted" or conversion is None:
            return replace(value, signal=name) if name != value.signal else value
        sigma = value.sigma / abs(conversion.scale) if value.sigma is not None else None
        return replace(value, signal=name, value=conversion.inverse(value.value), sigma=sigma)

    def finding(self, finding: Finding) -> Finding:
        finding.signal = self.name.get(finding.signal, finding.signal)
        return finding


def _build(
    line: str, description: LineDescription, tuning: Tuning, unmodelled: dict[str, str]
) -> dict[str, _Step]:
    """One step model per described step, each told the steps upstream of it (nearest first); a step
    whose description lacks a role its kind's model needs gets the generic monitoring, and the reason
    goes into ``unmodelled``."""
    steps: dict[str, _Step] = {}
    for step in description.steps:
        cls = model_class(step.kind)
        roles = frozenset(s.role or s.name for s in step.signals)
        missing = [r for r in cls.required if r not in roles]
        if missing:
            unmodelled[step.id] = (
                f"its {step.kind} model needs signals in the role(s) {', '.join(missing)} "
                "(`role = ...` in the line description); until then its signals are monitored one by one"
            )
            cls = GenericStep
        wanted = cls.role_units(roles)
        into, arrive = {}, {}
        for signal in step.signals:
            role = signal.role or signal.name
            arrive[role] = wanted.get(role, signal.unit)
            if role in wanted and not units.same(signal.unit, wanted[role]):
                try:
                    into[signal.name] = units.converter(signal.unit, wanted[role])
                except units.UnitError as exc:
                    where = f"line {description.line}: step {step.id} {signal.name}"
                    raise ConfigError(f"{where}: {exc}") from None
        names = {s.name: s.role or s.name for s in step.signals}
        spec = StepSpec(line, step.id, tuning, roles, arrive, {role: name for name, role in names.items()})
        stored = {s.role or s.name: s.unit for s in step.signals}
        steps[step.id] = _Step(cls(spec), names, into, stored)
    sources: dict[str, list[str]] = {}
    for flow in description.flow:
        sources.setdefault(flow.target, []).append(flow.source)
    for step_id, built in steps.items():
        order, frontier, seen = [], list(sources.get(step_id, [])), {step_id}
        while frontier:
            nearest = frontier.pop(0)
            if nearest not in seen:
                seen.add(nearest)
                order.append(nearest)
                frontier += sources.get(nearest, [])
        built.model.spec.upstream = [steps[s].model for s in order]
    return steps


class LineModel:
    """The step models of one line, fed tick by tick (``update_tick``) or sample by sample (``observe``)."""

    def __init__(
        self,
        line: str = "line1",
        *,
        description: LineDescription | None = None,
        arl0: float = 1e6,
        cell_arl0: float = 1e4,
        calibration_s: float = 2700.0,
        calibration_cells: int = 48,
        detector: str = "twoscale",
        memory_s: float = 3600.0,
        confirm_s: float = 120.0,
        realarm_s: float = 8 * 3600.0,
        k_mad: float = 5.0,
        pca_findings: bool = False,
        settle_s: float = 900.0,
        rebase_s: float = 600.0,
        on_delay_s: float = 0.0,
    ) -> None:
        self.line = line
        self.description = description if description is not None else linedesc.load()
        self.tuning = Tuning(
            arl0, cell_arl0, calibration_s, calibration_cells, detector, memory_s, confirm_s, realarm_s,
            k_mad, pca_findings, settle_s, rebase_s, on_delay_s,
        )  # fmt: skip
        self.arl0, self.calibration_s, self.memory_s = arl0, calibration_s, memory_s
        self.detector_kind = detector
        #: step -> why it runs the generic monitoring instead of its kind's model
        self.unmodelled: dict[str, str] = {}
        self._steps = _build(line, self.description, self.tuning, self.unmodelled)
        self.steps: dict[str, StepModel] = {m: s.model for m, s in self._steps.items()}
        self.emitted_ns: dict[str, int] = {}
        #: the last finding raised per condition, with the consequences it stands for
        self.raised: dict[str, Finding] = {}
        self.outputs: list[ModelOutput] = []
        self._pending_tick: dict[str, tuple[int, dict[str, float]]] = {}

    # ------------------------------------------------------------------ structure
    def layout(self) -> list[list[Any]]:
        """Each step's id, kind and roles: a snapshot of another layout does not fit this model."""
        return [[m, type(s).kind, sorted(s.spec.roles)] for m, s in self.steps.items()]

    def of_kind(self, kind: str) -> list[StepModel]:
        return [s for s in self.steps.values() if type(s).kind == kind]

    @property
    def calibrated(self) -> dict[str, bool]:
        return {m: s.calibrated for m, s in self.steps.items()}

    def calibration_progress(self, machine: str) -> str:
        return self.steps[machine].calibration_progress()

    def into(self, machine: str, role: str, value: float) -> float:
        """A value of ``role`` in the line's stored unit, in the unit of the step's kind."""
        conversion = self._steps[machine].back.get(role)
        return conversion(value) if conversion is not None else value

    def stored(self, machine: str, role: str, value: float) -> float:
        """A value of ``role`` in the kind's unit, in the unit the line stores it in."""
        conversion = self._steps[machine].back.get(role)
        return conversion.inverse(value) if conversion is not None else value

    def stored_sigma(self, machine: str, role: str, sigma: float) -> float:
        conversion = self._steps[machine].back.get(role)
        return sigma / abs(conversion.scale) if conversion is not None else sigma

    def unit(self, machine: str, role: str) -> str:
        """The unit the line stores ``role`` in (the kind's unit when the description does not list it)."""
        step = self._steps[machine]
        return step.units.get(role) or step.model.role_units(step.model.spec.roles).get(role, "")

    @property
    def last_alarm_ns(self) -> dict[str, int]:
        """``<machine>.<feature>`` -> plant time its detector last alarmed (a condition stays active)."""
        return {f"{m}.{k}": t for m, s in self.steps.items() for k, t in s.last_alarm_ns.items()}

    def rebaseline(self, step_id: str) -> None:
        """Forget a step's calibration after maintenance (a new pump, a roll change, a recalibrated
        gauge): it calibrates afresh on its next in-control period while the other steps keep
        monitoring. ValueError for a step the line does not have."""
        built = self._steps.get(step_id)
        if built is None:
            raise ValueError(f"line {self.line} has no step {step_id!r}; it has {', '.join(self._steps)}")
        old = built.model
        fresh = type(old)(old.spec)
        built.model = self.steps[step_id] = fresh
        for other in self._steps.values():
            other.model.spec.upstream = [fresh if m is old else m for m in other.model.spec.upstream]
        self._pending_tick.pop(step_id, None)

    # ------------------------------------------------------------------ input
    def observe(self, samples: Iterable[Sample]) -> list[Finding]:
        """Fold in normalised samples; a machine's tick is processed when its next tick begins."""
        findings: list[Finding] = []
        for s in samples:
            step = self._steps.get(s.machine)
            if step is None:
                continue
            if step.model.per_cell:
                if s.cell_id:
                    values = step.values({s.signal: s.value})
                    time_ns, channel, roll = s.source_time_ns, s.channel or "", s.roll_id or ""
                    found = step.model.cell(time_ns, s.cell_id, channel, roll, values)
                    findings += self._collect(step, found)
                continue
            pending = self._pending_tick.get(s.machine)
            if pending is not None and pending[0] != s.source_time_ns:
                tick = {f"{s.machine}.{k}": v for k, v in pending[1].items()}
                findings += self.update_tick(pending[0], tick)
                pending = None
            if pending is None:
                pending = (s.source_time_ns, {})
                self._pending_tick[s.machine] = pending
            pending[1][s.signal] = s.value
            if s.roll_id:
                step.model.roll = s.roll_id
        return findings

    def update_tick(self, time_ns: int, values: Mapping[str, Any]) -> list[Finding]:
        """One plant tick: ``values`` maps ``<machine>.<signal>`` to floats, ``<machine>.roll_id`` to text."""
        self.outputs = []
        per_machine: dict[str, dict[str, float]] = {}
        for column, value in values.items():
            machine, _, signal = column.partition(".")
            step = self._steps.get(machine)
            if step is None or step.model.per_cell:
                continue
            if signal == "roll_id":
                if isinstance(value, str) and value:  # a wide table's other rows hold NaN here
                    step.model.roll = value
            elif _reading(value):
                per_machine.setdefault(machine, {})[signal] = float(value)
        findings: list[Finding] = []
        outputs: list[ModelOutput] = []
        for machine, step in self._steps.items():
            data = per_machine.get(machine)
            if data is None:
                continue
            findings += self._collect(step, step.model.tick(time_ns, step.values(data)), outputs)
        self.outputs = outputs
        return findings

    def add_cell(
        self,
        time_ns: int,
        cell_id: str,
        channel: str,
        roll_id: str,
        position_m: float,
        charge_capacity: float,
        discharge_capacity: float,
    ) -> list[Finding]:
        """A formed cell of a recorded table (``models.replay``), in the stored names of the cell step."""
        step = self._cell_step()
        named = {
            step.name.get("position_m", "position_m"): position_m,
            step.name.get("charge_capacity", "charge_capacity"): charge_capacity,
            step.name.get("discharge_capacity", "discharge_capacity"): discharge_capacity,
        }
        return self._collect(step, step.model.cell(time_ns, cell_id, channel, roll_id, step.values(named)))

    def add_k_value(self, time_ns: int, cell_id: str, channel: str, k_value: float) -> list[Finding]:
        """An aged cell's K-value of a recorded table (``models.replay``)."""
        step = self._cell_step()
        values = step.values({step.name.get("k_value", "k_value"): k_value})
        return self._collect(step, step.model.cell(time_ns, cell_id, channel, "", values))

    def _cell_step(self) -> _Step:
        step = next((s for s in self._steps.values() if s.model.per_cell), None)
        if step is None:
            raise ConfigError(f"line {self.description.line} has no step that forms cells")
        return step

    def _collect(
        self, step: _Step, findings: list[Finding], outputs: list[ModelOutput] | None = None
    ) -> list[Finding]:
        """The step's outputs and findings in the line's names, each finding raised once per condition."""
        named = [step.output(v) for v in step.model.outputs]
        if outputs is None:
            self.outputs = named
        else:
            outputs += named
        return [f for found in findings if (f := self._emit(step, step.finding(found))) is not None]

    def _emit(self, step: _Step, finding: Finding) -> Finding | None:
        """Raise a finding once per condition. A consequence of an active upstream finding raises no
        alarm of its own: the upstream one, updated to list it among what it affects, is raised again
        (the alert store updates the open alert), so one cause is one alarm."""
        window = self.tuning.realarm_s * 1e9
        if finding.cause in step.model.consequential:
            upstream = {s.machine for s in step.model.spec.upstream}
            roots = [
                key
                for key, t in self.emitted_ns.items()
                if key.split("/")[1] in upstream and finding.time_ns - t < window
            ]
            if roots:
                return self._consequence(roots[0], finding)
            if finding.cause in step.model.consequence_only:
                return None
        last = self.emitted_ns.get(finding.key)
        if last is not None and finding.time_ns - last < window:
            return None
        self.emitted_ns[finding.key] = finding.time_ns
        self.raised[finding.key] = finding
        return finding

    def _consequence(self, root_key: str, finding: Finding) -> Finding | None:
        """The root finding with ``finding``'s signal among what it affects; None if already listed."""
        root = self.raised.get(root_key)
        consequence = f"{finding.machine}.{finding.signal}"
        if root is None or consequence in root.affected:
            return None
        updated = replace(
            root,
            affected=(*root.affected, consequence),
            time_ns=finding.time_ns,
            rolls=sorted(set(root.rolls) | set(finding.rolls)),
            cells=sorted(set(root.cells) | set(finding.cells)),
        )
        self.raised[root_key] = updated
        return updated

    # --------------------------------------------------------------- outputs
    def parameters(self) -> list[Parameter]:
        return [e for s in self.steps.values() for e in s.parameters()]

    def status(self, time_ns: int) -> list[ModelOutput]:
        """The step models' status outputs (a cycler's channel offsets) in the line's names."""
        return [step.output(v) for step in self._steps.values() for v in step.model.status(time_ns)]

    def frozen(self) -> list[tuple[str, str, int]]:
        """(machine, stored signal, plant time it froze) of each value a step withholds as frozen."""
        return [
            (m, s.name.get(role, role), since)
            for m, s in self._steps.items()
            for role, since in sorted(s.model.stale().items())
        ]

    def unresolved_levels(self) -> list[tuple[str, str, int]]:
        """(machine, feature, plant time calibration ended) of each feature whose level chart is off: its
        level wanders on a scale the calibration period was too short to resolve."""
        return [
            (m, feature, since)
            for m, s in self._steps.items()
            for feature, since in sorted(s.model.unresolved_levels().items())
        ]

    def statistics(self) -> dict[str, tuple[float, float]]:
        """Every detector's current statistic and threshold, by ``<machine>.<feature>``."""
        return {f"{m}.{k}": v for m, s in self.steps.items() for k, v in s.statistics().items()}

    # -------------------------------------------------------------- snapshot
    def config(self) -> dict[str, Any]:
        """The constructor's arguments: ``LineModel(**model.config())`` is a fresh model configured alike."""
        tuning = asdict(self.tuning)
        return {"line": self.line, **tuning}

    def snapshot(self) -> dict[str, Any]:
        """All state as JSON-able data; ``LineModel.restore`` resumes from it."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config(),
            "layout": self.layout(),
            "steps": {m: s.state() for m, s in self.steps.items()},
            "emitted_ns": self.emitted_ns,
            "raised": {key: asdict(finding) for key, finding in self.raised.items()},
            "pending_tick": self._pending_tick,
        }

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any], description: LineDescription | None = None) -> LineModel:
        model = cls(**snapshot["config"], description=description)
        if snapshot["layout"] != model.layout():
            raise ConfigError("the snapshot is of another line layout than the line description")
        for machine, state in snapshot["steps"].items():
            model.steps[machine].load(state)
        model.emitted_ns = dict(snapshot["emitted_ns"])
        model.raised = {key: _finding(saved) for key, saved in snapshot["raised"].items()}
        model._pending_tick = {m: (int(t), dict(v)) for m, (t, v) in snapshot["pending_tick"].items()}
        return model
