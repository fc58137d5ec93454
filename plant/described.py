"""``twin sim --line FILE``: a simulator serving any line description made of its step kinds.

Two simulators know their kinds' physics: the solid-state line's (a dry-electrode press and a sintering
furnace, ``plant.solidstate``, named as ``lines/solid-state.toml``) and the pilot line's coater, calender
and formation cyclers (``plant.line``, named as ``lines/pilot-nmc.toml``). A user's description may name
its steps and signals otherwise and give other units: each described step is the simulator's machine of
its kind, each of its signals the simulator's signal in the same role, converted from the simulator's
unit into the described one with ``core.units`` (setpoint writes are converted back).

A pilot-kind line may have several coaters: each coater, with the calender its material flows to, is a
pilot line of its own (its own seed, hence its own hidden parameters and noise; its rolls are named
after it). The cells formed are those of the chain whose material the flow calls the cathode (else the
first): their capacity follows that coater's loading, and the cyclers publish them on MQTT in the
formation step's names (``plant.cyclers.Naming``). A fault scenario runs on the first chain, a cell
scenario on the cells' chain; the others run nominal. A kind the simulators do not have, a solid-state
kind twice, or a role the simulator does not make is an error when the plant starts, naming the step.

``DescribedOpcUaServer`` serves the result like the pilot line's server: one object per step under an
object named after the line, every signal an analog variable with EngineeringUnits (setpoints writable,
in a ``Setpoints`` folder, with their limits as EURange), a ``ScanCounter`` and the ``RollId`` text, so
``twin ingest`` discovers it without a tag map.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from asyncua import Node, Server, ua

from core import linedesc, units
from core.errors import ConfigError
from core.linedesc import LineDescription, SignalSpec, Step
from plant import solidstate
from plant.cyclers import Naming, naming
from plant.formation import Cell, OcvReading
from plant.line import PilotLine
from plant.opcua_security import ServerSecurity, apply_security
from plant.opcua_server import (
    GOOD,
    NAMESPACE,
    add_analog,
    check_port_free,
    historize,
    node_id,
    qname,
    ua_time,
)
from plant.scenarios import SCENARIOS, Fault, Scenario
from plant.signals import browse_name

log = logging.getLogger(__name__)
KINDS = ("dry_electrode_press", "sintering_furnace", "slot_die_coater", "calender", "formation")
SEED_STEP = 500  # chain i runs on seed + i · SEED_STEP


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
    make: Callable[[Scenario, int, int, bool], _Engine]  # scenario, seed, cycler channels, realistic
    chained: bool  # several chains of its kinds (each its own engine), or each kind once


SIMULATORS = (
    _Simulator(
        "solid-state",
        frozenset({"dry_electrode_press", "sintering_furnace"}),
        solidstate.SCENARIOS,
        lambda scenario, seed, _channels, realistic: solidstate.SolidStateLine(scenario, seed, realistic),
        False,
    ),
    _Simulator(
        "pilot-nmc", frozenset({"slot_die_coater", "calender", "formation"}), SCENARIOS, PilotLine, True
    ),
)


def _simulator(description: LineDescription) -> _Simulator | None:
    kinds = {step.kind for step in description.steps}
    return next((sim for sim in SIMULATORS if kinds <= sim.kinds), None)


@dataclass(frozen=True, slots=True)
class _Column:
    chain: int  # the engine that makes it
    source: str  # the simulator's ``machine.signal``
    scale: float  # described = scale · simulator + offset
    offset: float


@dataclass(slots=True)
class DescribedTick:
    t: float
    values: dict[str, float]
    text: dict[str, str]
    #: (chain, fault) of each fault that began in this tick
    onsets: list[tuple[int, Fault]]
    formed: list[Cell] = field(default_factory=list)
    ocv: list[OcvReading] = field(default_factory=list)


def _chains(description: LineDescription, simulator: _Simulator) -> list[list[Step]]:
    """The steps each engine simulates: one chain per coater (with the calender its material reaches) and
    the formation step on the cells' chain; a line of other kinds is one chain, each kind once."""
    steps = description.steps
    kinds = [step.kind for step in steps]
    if not simulator.chained or "slot_die_coater" not in kinds:
        if len(kinds) != len(set(kinds)):
            raise ConfigError(
                f"line {description.line}: this simulator runs each of {', '.join(sorted(simulator.kinds))} "
                "once"
            )
        return [list(steps)]
    chains = [[step] for step in steps if step.kind == "slot_die_coater"]
    head = {chain[0].id: chain for chain in chains}
    for step in steps:
        if step.kind == "calender":
            sources = [f.source for f in description.flow if f.target == step.id and f.source in head]
            chain = head[sources[0]] if len(sources) == 1 else chains[0] if len(chains) == 1 else None
            if chain is None or len(chain) > 1:
                raise ConfigError(f"step {step.id}: the simulator needs one coater of its own upstream")
            chain.append(step)
    cells = [step for step in steps if step.kind == "formation"]
    if len(cells) > 1:
        raise ConfigError(f"line {description.line}: the simulator forms cells in one formation step")
    if cells:
        _cells_chain(description, chains, cells[0]).append(cells[0])
    return chains


def _cells_chain(description: LineDescription, chains: list[list[Step]], cells: Step) -> list[Step]:
    into = [f for f in description.flow if f.target == cells.id]
    chain_of = {step.id: chain for chain in chains for step in chain}
    fed = [(f, chain_of[f.source]) for f in into if f.source in chain_of]
    cathode = next((chain for f, chain in fed if "cathode" in f"{f.material} {f.source}".lower()), None)
    return cathode or (fed[0][1] if fed else chains[0])


def is_pilot(description: LineDescription) -> bool:
    """Whether ``description`` is the pilot line's own (its steps), which ``plant.runtime`` runs with the
    pilot's address space."""
    return [s.id for s in description.steps] == [s.id for s in linedesc.load().steps]


def simulates(description: LineDescription) -> bool:
    """Whether a simulator runs ``description`` (its kinds, each kind once unless chained by coaters)."""
    simulator = _simulator(description)
    if simulator is None:
        return False
    try:
        _chains(description, simulator)
    except ConfigError:
        return False
    return True


class DescribedLine:
    """A simulator in a description's names and units (see module)."""

    def __init__(
        self,
        description: LineDescription,
        scenario: str,
        seed: int,
        cycler_channels: int = 16,
        realistic: bool = False,
    ) -> None:
        simulator = _simulator(description)
        if simulator is None:
            kinds = ", ".join(step.kind for step in description.steps)
            raise ConfigError(
                f"no simulator runs a line of {kinds}: one runs {', '.join(sorted(SIMULATORS[0].kinds))}, "
                f"the other {', '.join(sorted(SIMULATORS[1].kinds))}"
            )
        if scenario not in simulator.scenarios:
            known = ", ".join(simulator.scenarios)
            raise ConfigError(f"unknown scenario {scenario!r} for this line; known: {known}")
        self.description = description
        chains = _chains(description, simulator)
        own = linedesc.load(linedesc.builtin_path(simulator.own))
        cells_chain = next((i for i, c in enumerate(chains) if any(s.kind == "formation" for s in c)), None)
        spec = simulator.scenarios[scenario]
        own_cells = {s.id for s in own.steps if s.kind == "formation"}
        on_cells = bool(spec.faults) and {f.machine for f in spec.faults} <= own_cells
        faulted = cells_chain if on_cells and cells_chain is not None else 0
        nominal = simulator.scenarios["nominal"]
        self.engines = [
            simulator.make(
                spec if i == faulted else nominal, seed + SEED_STEP * i, cycler_channels, realistic
            )
            for i in range(len(chains))
        ]
        #: each chain's described step -> simulator machine
        self.machines: list[dict[str, str]] = []
        self.columns: dict[str, _Column] = {}
        for i, chain in enumerate(chains):
            machines = {}
            for step in chain:
                machine = next((s for s in own.steps if s.kind == step.kind), None)
                if machine is None:
                    raise ConfigError(
                        f"step {step.id}: the simulator has no {step.kind}; it has {', '.join(KINDS)}"
                    )
                machines[step.id] = machine.id
                if step.kind != "formation":
                    for signal in step.signals:
                        self.columns[f"{step.id}.{signal.name}"] = self._column(i, step, signal, machine)
            self.machines.append(machines)
        #: the cyclers' chain and their names, when the line forms cells
        self.cells: tuple[PilotLine, Naming] | None = None
        if cells_chain is not None:
            engine = self.engines[cells_chain]
            assert isinstance(engine, PilotLine)
            step_id = next(s.id for s in chains[cells_chain] if s.kind == "formation")
            self.cells = (engine, naming(description, step_id))
        #: roll names of a chain whose cells are not formed carry its coater's name, so rolls stay apart
        self.roll_prefix = [
            "" if i == cells_chain or len(chains) == 1 else f"{chain[0].id.upper()}-"
            for i, chain in enumerate(chains)
        ]
        self.setpoints = {
            c: self._described(c, self.engines[col.chain].setpoints[col.source])
            for c, col in self.columns.items()
            if col.source in self.engines[col.chain].setpoints
        }
        self.t = 0.0

    @property
    def opcua_steps(self) -> list[Step]:
        """The steps served on OPC UA: all but formation, whose cyclers speak MQTT."""
        return [step for step in self.description.steps if step.kind != "formation"]

    @staticmethod
    def _column(chain: int, step: Step, signal: SignalSpec, machine: Step) -> _Column:
        role = signal.role or signal.name
        source = next((s for s in machine.signals if s.role == role), None)
        if source is None:
            raise ConfigError(f"step {step.id} {signal.name}: the simulator's {step.kind} has no {role}")
        try:
            conversion = units.converter(source.unit, signal.unit)
        except units.UnitError as exc:
            raise ConfigError(f"step {step.id} {signal.name}: {exc}") from None
        return _Column(chain, f"{machine.id}.{source.name}", conversion.scale, conversion.offset)

    def _described(self, column: str, value: float) -> float:
        c = self.columns[column]
        return c.scale * value + c.offset

    def write_setpoint(self, column: str, value: float) -> None:
        """A described setpoint, converted into the simulator's unit; ValueError if it refuses."""
        c = self.columns.get(column)
        if c is None or c.source not in self.engines[c.chain].setpoints:
            raise ValueError(f"{column} is not a setpoint of this line")
        self.engines[c.chain].write_setpoint(c.source, (value - c.offset) / c.scale)
        self.setpoints[column] = value

    def step(self, dt: float) -> DescribedTick:
        ticks = [engine.step(dt) for engine in self.engines]
        self.t = ticks[0].t
        values = {
            column: c.scale * ticks[c.chain].values[c.source] + c.offset
            for column, c in self.columns.items()
            if c.source in ticks[c.chain].values and c.source not in self.engines[c.chain].setpoints
        }
        text = {
            f"{step}.roll_id": self.roll_prefix[i] + ticks[i].text[f"{machine}.roll_id"]
            for i, machines in enumerate(self.machines)
            for step, machine in machines.items()
            if f"{machine}.roll_id" in ticks[i].text
        }
        onsets = [(i, fault) for i, tick in enumerate(ticks) for fault in tick.onsets]
        out = DescribedTick(self.t, values, text, onsets)
        if self.cells is not None:
            tick = ticks[self.engines.index(self.cells[0])]
            out.formed, out.ocv = tick.formed, tick.ocv
        return out

    def ground_truth(self, onset: tuple[int, Fault], start: datetime) -> dict[str, object]:
        """A fault's record in the described names."""
        chain, fault = onset
        record = fault.ground_truth(self.engines[chain].scenario.name, start)
        machines = self.machines[chain]
        step = next((s for s, m in machines.items() if m == fault.machine), fault.machine)
        renamed = [
            c
            for c, col in self.columns.items()
            if col.chain == chain and any(fnmatch.fnmatch(col.source, p) for p in fault.signals)
        ]
        formed = self.cells is not None and self.engines[chain] is self.cells[0]
        cells = [p for p in fault.signals if p.startswith("cells.")] if formed else []
        return {**record, "machine": step, "signals": renamed + cells}


class DescribedOpcUaServer:
    """Serves a ``DescribedLine`` under ``Objects/<Line>`` at ``endpoint`` (see module)."""

    def __init__(
        self, endpoint: str, line: DescribedLine, security: ServerSecurity, history_s: float | None = None
    ) -> None:
        self.endpoint = endpoint
        self.line = line
        self.security = security
        self.history_s = history_s
        self.server = Server()
        self.idx = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._scan = dict.fromkeys((step.id for step in line.opcua_steps), 0)

    async def start(self) -> None:
        check_port_free(self.endpoint)
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(
            f"linetwin simulated {self.line.description.name or self.line.description.line}"
        )
        await apply_security(server, self.security)
        self.idx = await server.register_namespace(NAMESPACE)
        name = browse_name(self.line.description.line)
        root = await server.nodes.objects.add_object(node_id(name, self.idx), qname(name, self.idx))
        for step in self.line.opcua_steps:
            await self._add_step(root, step)
        await historize(server, self._nodes.values(), self.history_s)
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
        """A setpoint has its limits as EURange; a measured value none (the description gives none)."""
        limits = None if signal.setpoint is None else (signal.setpoint.low, signal.setpoint.high)
        self._nodes[column] = await add_analog(
            self.server,
            parent,
            self.idx,
            column,
            signal.name,
            signal.description,
            self.line.setpoints.get(column, 0.0),
            signal.unit,
            limits,
            None if signal.setpoint is None else self.line.write_setpoint,
        )

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
