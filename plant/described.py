"""``twin sim --line FILE``: a simulator serving any line description made of its step kinds.

Two simulators know their kinds' physics: the solid-state line's (a dry-electrode press and a sintering
furnace, ``plant.solidstate``, named as ``lines/solid-state.toml``) and the pilot line's coater and
calender (``plant.line``, named as ``lines/pilot-nmc.toml``; its cyclers speak MQTT and are not served
here). A user's description may name its steps and signals otherwise and give other units: each
described step is the simulator's machine of its kind, each of its signals the simulator's signal in
the same role, converted from the simulator's unit into the described one with ``core.units``
(setpoint writes are converted back). A kind the simulators do not have, two steps of one kind, or a
role the simulator does not make is an error when the plant starts, naming the step.

``DescribedOpcUaServer`` serves the result like the pilot line's server: one object per step under an
object named after the line, every signal an analog variable with EngineeringUnits (setpoints writable,
in a ``Setpoints`` folder, with their limits as EURange), a ``ScanCounter`` and the ``RollId`` text, so
``twin ingest`` discovers it without a tag map.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from asyncua import Node, Server, ua

from core import linedesc, units
from core.errors import ConfigError
from core.linedesc import LineDescription, SignalSpec, Step
from plant import solidstate
from plant.line import PilotLine
from plant.opcua_server import (
    GOOD,
    NAMESPACE,
    check_port_free,
    eu_information,
    node_id,
    qname,
    setpoint_setter,
    ua_time,
)
from plant.scenarios import SCENARIOS, Fault, Scenario
from plant.signals import browse_name

log = logging.getLogger(__name__)
KINDS = ("dry_electrode_press", "sintering_furnace", "slot_die_coater", "calender")


class _Engine(Protocol):
    """What both simulators offer: PilotLine and SolidStateLine."""

    scenario: Scenario
    setpoints: dict[str, float]

    def write_setpoint(self, column: str, value: float) -> None: ...

    def step(self, dt: float) -> Any: ...


@dataclass(frozen=True, slots=True)
class _Simulator:
    own: str  # the shipped description that names the simulator's machines
    kinds: frozenset[str]
    scenarios: dict[str, Scenario]
    make: Callable[[Scenario, int], _Engine]


SIMULATORS = (
    _Simulator(
        "solid-state",
        frozenset({"dry_electrode_press", "sintering_furnace"}),
        solidstate.SCENARIOS,
        solidstate.SolidStateLine,
    ),
    _Simulator("pilot-nmc", frozenset({"slot_die_coater", "calender"}), SCENARIOS, PilotLine),
)


def _simulator(description: LineDescription) -> _Simulator | None:
    kinds = {step.kind for step in description.steps}
    return next((sim for sim in SIMULATORS if kinds <= sim.kinds), None)


@dataclass(frozen=True, slots=True)
class _Column:
    source: str  # the simulator's ``machine.signal``
    scale: float  # described = scale · simulator + offset
    offset: float


@dataclass(slots=True)
class DescribedTick:
    t: float
    values: dict[str, float]
    text: dict[str, str]
    onsets: list[Fault]


def simulates(description: LineDescription) -> bool:
    """Whether one simulator has every kind of ``description``'s steps, once each (the pilot line itself,
    with its cyclers, runs as ``plant.runtime`` runs it)."""
    kinds = [step.kind for step in description.steps]
    return _simulator(description) is not None and len(kinds) == len(set(kinds))


class DescribedLine:
    """The solid-state simulator in a description's names and units (see module)."""

    def __init__(self, description: LineDescription, scenario: str, seed: int) -> None:
        simulator = _simulator(description)
        if simulator is None or not simulates(description):
            kinds = ", ".join(step.kind for step in description.steps)
            raise ConfigError(
                f"no simulator runs a line of {kinds}: one runs {', '.join(sorted(SIMULATORS[0].kinds))}, "
                f"the other {', '.join(sorted(SIMULATORS[1].kinds))}, each kind once"
            )
        if scenario not in simulator.scenarios:
            known = ", ".join(simulator.scenarios)
            raise ConfigError(f"unknown scenario {scenario!r} for this line; known: {known}")
        self.description = description
        self.sim = simulator.make(simulator.scenarios[scenario], seed)
        own = linedesc.load(linedesc.builtin_path(simulator.own))
        self.columns: dict[str, _Column] = {}
        self.machines: dict[str, str] = {}  # described step -> simulator machine
        for step in description.steps:
            machine = next((s for s in own.steps if s.kind == step.kind), None)
            if machine is None:
                raise ConfigError(
                    f"step {step.id}: the simulator has no {step.kind}; it has {', '.join(KINDS)}"
                )
            self.machines[step.id] = machine.id
            for signal in step.signals:
                self.columns[f"{step.id}.{signal.name}"] = self._column(step, signal, machine)
        self.setpoints = {
            c: self._described(c, self.sim.setpoints[col.source])
            for c, col in self.columns.items()
            if col.source in self.sim.setpoints
        }
        self.t = 0.0

    @staticmethod
    def _column(step: Step, signal: SignalSpec, machine: Step) -> _Column:
        role = signal.role or signal.name
        source = next((s for s in machine.signals if s.role == role), None)
        if source is None:
            raise ConfigError(f"step {step.id} {signal.name}: the simulator's {step.kind} has no {role}")
        try:
            conversion = units.converter(source.unit, signal.unit)
        except units.UnitError as exc:
            raise ConfigError(f"step {step.id} {signal.name}: {exc}") from None
        return _Column(f"{machine.id}.{source.name}", conversion.scale, conversion.offset)

    def _described(self, column: str, value: float) -> float:
        c = self.columns[column]
        return c.scale * value + c.offset

    def write_setpoint(self, column: str, value: float) -> None:
        """A described setpoint, converted into the simulator's unit; ValueError if it refuses."""
        c = self.columns.get(column)
        if c is None or c.source not in self.sim.setpoints:
            raise ValueError(f"{column} is not a setpoint of this line")
        self.sim.write_setpoint(c.source, (value - c.offset) / c.scale)
        self.setpoints[column] = value

    def step(self, dt: float) -> DescribedTick:
        tick = self.sim.step(dt)
        self.t = tick.t
        values = {
            column: c.scale * tick.values[c.source] + c.offset
            for column, c in self.columns.items()
            if c.source in tick.values and c.source not in self.sim.setpoints
        }
        text = {
            f"{step}.roll_id": tick.text[f"{machine}.roll_id"]
            for step, machine in self.machines.items()
            if f"{machine}.roll_id" in tick.text
        }
        return DescribedTick(tick.t, values, text, tick.onsets)

    def ground_truth(self, fault: Fault, start: datetime) -> dict[str, object]:
        """A fault's record in the described names."""
        record = fault.ground_truth(self.sim.scenario.name, start)
        step = next((s for s, m in self.machines.items() if m == fault.machine), fault.machine)
        renamed = [c for c, col in self.columns.items() if col.source in fault.signals]
        return {**record, "machine": step, "signals": renamed}


class DescribedOpcUaServer:
    """Serves a ``DescribedLine`` under ``Objects/<Line>`` at ``endpoint`` (see module)."""

    def __init__(self, endpoint: str, line: DescribedLine) -> None:
        self.endpoint = endpoint
        self.line = line
        self.server = Server()
        self.idx = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._scan = dict.fromkeys(line.machines, 0)

    async def start(self) -> None:
        check_port_free(self.endpoint)
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(
            f"linetwin simulated {self.line.description.name or self.line.description.line}"
        )
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.idx = await server.register_namespace(NAMESPACE)
        name = browse_name(self.line.description.line)
        root = await server.nodes.objects.add_object(node_id(name, self.idx), qname(name, self.idx))
        for step in self.line.description.steps:
            await self._add_step(root, step)
        await server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def _add_step(self, root: Node, step: Step) -> None:
        idx = self.idx
        obj = await root.add_object(node_id(step.id, idx), qname(browse_name(step.id), idx))
        setpoints = await obj.add_folder(node_id(f"{step.id}.setpoints", idx), qname("Setpoints", idx))
        for signal in step.signals:
            await self._add_analog(setpoints if signal.setpoint else obj, f"{step.id}.{signal.name}", signal)
        for name, value, vtype in (
            ("state", "running", ua.VariantType.String),
            ("roll_id", "", ua.VariantType.String),
            ("scan_counter", 0, ua.VariantType.UInt64),
        ):
            node = await obj.add_variable(
                node_id(f"{step.id}.{name}", idx), qname(browse_name(name), idx), ua.Variant(value, vtype)
            )
            self._nodes[f"{step.id}.{name}"] = node.nodeid

    async def _add_analog(self, parent: Node, column: str, signal: SignalSpec) -> None:
        """A setpoint is an AnalogItemType with its limits as EURange; a measured value a BaseAnalogType,
        whose EURange is optional (OPC UA Part 8, 5.3.2): the description gives it none."""
        access = ua.AccessLevel.CurrentRead.mask
        if signal.setpoint is not None:
            access |= ua.AccessLevel.CurrentWrite.mask
        kind = ua.ObjectIds.AnalogItemType if signal.setpoint is not None else ua.ObjectIds.BaseAnalogType
        attributes = ua.VariableAttributes(
            DisplayName=ua.LocalizedText(browse_name(signal.name)),
            Description=ua.LocalizedText(signal.description),
            Value=ua.Variant(self.line.setpoints.get(column, 0.0), ua.VariantType.Double),
            DataType=node_id(ua.ObjectIds.Double, 0),
            ValueRank=-1,
            AccessLevel=ua.Byte(access),
            UserAccessLevel=ua.Byte(access),
        )
        item = ua.AddNodesItem(
            ParentNodeId=parent.nodeid,
            ReferenceTypeId=node_id(ua.ObjectIds.HasComponent, 0),
            RequestedNewNodeId=node_id(column, self.idx),
            BrowseName=qname(browse_name(signal.name), self.idx),
            NodeClass=ua.NodeClass.Variable,
            NodeAttributes=attributes,
            TypeDefinition=node_id(kind, 0),
        )
        (result,) = await parent.session.add_nodes([item])
        result.StatusCode.check()
        node = self.server.get_node(result.AddedNodeId)
        if signal.setpoint is not None:
            limits = ua.Range(signal.setpoint.low, signal.setpoint.high)
            await node.add_property(node_id(f"{column}.EURange", self.idx), qname("EURange", 0), limits)
            self.server.set_attribute_value_setter(
                node.nodeid, setpoint_setter(column, self.line.write_setpoint)
            )
        await node.add_property(
            node_id(f"{column}.EngineeringUnits", self.idx),
            qname("EngineeringUnits", 0),
            eu_information(signal.unit),
        )
        self._nodes[column] = node.nodeid

    async def publish(self, tick: DescribedTick, when: datetime) -> None:
        server, now = self.server, datetime.now(UTC)
        for column, value in tick.values.items():
            if not math.isfinite(value):
                continue
            dv = ua.DataValue(
                ua.Variant(value, ua.VariantType.Double),
                StatusCode=GOOD,
                SourceTimestamp=ua_time(when),
                ServerTimestamp=ua_time(now),
            )
            await server.write_attribute_value(self._nodes[column], dv)
        for column, label in tick.text.items():
            dv = ua.DataValue(ua.Variant(label, ua.VariantType.String), SourceTimestamp=ua_time(when))
            await server.write_attribute_value(self._nodes[column], dv)
        for step in self._scan:
            self._scan[step] += 1
            dv = ua.DataValue(
                ua.Variant(self._scan[step], ua.VariantType.UInt64),
                SourceTimestamp=ua_time(when),
                ServerTimestamp=ua_time(now),
            )
            await server.write_attribute_value(self._nodes[f"{step}.scan_counter"], dv)
