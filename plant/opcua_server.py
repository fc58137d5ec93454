"""The electrode machines' OPC UA server: an address space per machine, written once per plant tick.

Process values and setpoints are AnalogItemType variables with EngineeringUnits and EURange (OPC UA
Part 8); setpoints sit in a ``Setpoints`` folder and are the only writable nodes. A client's setpoint
write goes through a value setter that checks type and EURange and raises the Bad status the client
sees (BadTypeMismatch, BadOutOfRange), so a bad write never reaches the physics or stops the server.
Tick values go in with ``write_attribute_value`` on prepared DataValues: no per-call service round trip,
which keeps up with 60+ ticks per wall second.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import urlsplit

from asyncua import Node, Server, ua
from asyncua.server.address_space import NodeData

from core import units
from plant.line import SETPOINT_SIGNALS, PilotLine, Tick
from plant.opcua_security import ServerSecurity, apply_security
from plant.signals import (
    GAUGE_SIGNALS,
    MACHINES,
    OBJECT_NAMES,
    SIGNALS,
    Signal,
    browse_name,
)

NAMESPACE = "urn:linetwin:pilotline"
log = logging.getLogger(__name__)
#: A server without history (``plant.opcua_history_s`` unset) answers a client's HistoryRead with no
#: values, as a machine without history does; asyncua's memory store would log a warning per node and read.
logging.getLogger("asyncua.server.history").setLevel(logging.ERROR)


# asyncua annotates with marker subclasses of builtins (ua.String, ua.Int16, ua.DateTime, ...); these
# helpers are the one place plain values are declared as such.
def node_id(name: str | int, idx: int) -> ua.NodeId:
    identifier = ua.String(name) if isinstance(name, str) else ua.Int32(name)
    return ua.NodeId(identifier, ua.Int16(idx))


def qname(name: str, idx: int) -> ua.QualifiedName:
    return ua.QualifiedName(ua.String(name), ua.UInt16(idx))


def ua_time(when: datetime) -> ua.DateTime:
    return cast(ua.DateTime, when)


def status_code(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


GOOD = status_code(ua.StatusCodes.Good)
HELD = status_code(ua.StatusCodes.UncertainLastUsableValue)


def eu_information(unit: str) -> ua.EUInformation:
    """OPC UA Part 8, 5.6.3: the UNECE code packed in UnitId, the unit's symbol as DisplayName."""
    code = units.to_unece(unit)
    return ua.EUInformation(
        NamespaceUri=units.UNECE_NAMESPACE,
        UnitId=units.unece_unit_id(code),
        DisplayName=ua.LocalizedText(units.symbol(unit)),
        Description=ua.LocalizedText(f"UNECE {code}"),
    )


#: values a node's history keeps at most: a day of one-second ticks
HISTORY_VALUES = 86_400


async def historize(server: Server, nodes: Iterable[ua.NodeId], keep_s: float | None) -> None:
    """Keep each node's changes for ``keep_s`` wall seconds (asyncua's in-memory history, at most
    ``HISTORY_VALUES``), so that ingest reads what a network cut or its own restart missed back with
    HistoryRead; ``None`` keeps none, as a server without history. A kill of the server loses it."""
    if keep_s is None:
        return
    for node in nodes:
        await server.historize_node_data_change(
            server.get_node(node), timedelta(seconds=keep_s), HISTORY_VALUES
        )


def check_port_free(endpoint: str) -> None:
    """Fail before asyncua does: it logs a traceback for a port in use, linetwin reports one line."""
    url = urlsplit(endpoint)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((url.hostname or "0.0.0.0", url.port or 4840))


async def add_analog(
    server: Server,
    parent: Node,
    idx: int,
    column: str,
    name: str,
    description: str,
    value: float,
    unit: str,
    eu_range: tuple[float, float] | None,
    write: Callable[[str, float], None] | None,
) -> ua.NodeId:
    """A Double variable with its EngineeringUnits (OPC UA Part 8, 5.3.2): an AnalogItemType with its
    EURange when there is one, else a BaseAnalogType (whose EURange is optional); writable through
    ``write`` (``setpoint_setter``) when given. Added in one AddNodes call, so the type definition is set
    at creation as the spec asks, which asyncua's ``add_variable`` does not offer."""
    access = ua.AccessLevel.CurrentRead.mask
    if write is not None:
        access |= ua.AccessLevel.CurrentWrite.mask
    kind = ua.ObjectIds.AnalogItemType if eu_range is not None else ua.ObjectIds.BaseAnalogType
    attributes = ua.VariableAttributes(
        DisplayName=ua.LocalizedText(browse_name(name)),
        Description=ua.LocalizedText(description),
        Value=ua.Variant(value, ua.VariantType.Double),
        DataType=node_id(ua.ObjectIds.Double, 0),
        ValueRank=-1,
        AccessLevel=ua.Byte(access),
        UserAccessLevel=ua.Byte(access),
    )
    item = ua.AddNodesItem(
        ParentNodeId=parent.nodeid,
        ReferenceTypeId=node_id(ua.ObjectIds.HasComponent, 0),
        RequestedNewNodeId=node_id(column, idx),
        BrowseName=qname(browse_name(name), idx),
        NodeClass=ua.NodeClass.Variable,
        NodeAttributes=attributes,
        TypeDefinition=node_id(kind, 0),
    )
    (result,) = await parent.session.add_nodes([item])
    result.StatusCode.check()
    node = server.get_node(result.AddedNodeId)
    if eu_range is not None:
        await node.add_property(node_id(f"{column}.EURange", idx), qname("EURange", 0), ua.Range(*eu_range))
    await node.add_property(
        node_id(f"{column}.EngineeringUnits", idx), qname("EngineeringUnits", 0), eu_information(unit)
    )
    if write is not None:
        server.set_attribute_value_setter(node.nodeid, setpoint_setter(column, write))
    return node.nodeid


def setpoint_setter(
    column: str, write: Callable[[str, float], None]
) -> Callable[[NodeData, ua.AttributeIds, ua.DataValue], None]:
    """A client's write of setpoint ``column``: a Double, and accepted by ``write`` (which raises
    ValueError for a value outside the machine's range), else the Bad status the client sees."""

    def setter(node: NodeData, attr: ua.AttributeIds, value: ua.DataValue) -> None:
        variant = value.Value
        if variant is None or variant.VariantType != ua.VariantType.Double:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadTypeMismatch)
        try:
            write(column, variant.Value)
        except ValueError as exc:
            log.warning("setpoint write refused: %s", exc, extra={"signal": column})
            raise ua.UaStatusCodeError(ua.StatusCodes.BadOutOfRange) from None
        node.attributes[attr].value = ua.DataValue(
            variant,
            SourceTimestamp=value.SourceTimestamp or ua_time(datetime.now(UTC)),
            ServerTimestamp=ua_time(datetime.now(UTC)),
        )
        log.info("setpoint written", extra={"signal": column, "value": variant.Value})

    return setter


class PlantOpcUaServer:
    """Serves a PilotLine's machines under ``Objects/PilotLine`` at ``endpoint``, with the endpoints and
    certificates of ``security`` (``plant.opcua_security``)."""

    def __init__(
        self, endpoint: str, line: PilotLine, security: ServerSecurity, history_s: float | None = None
    ) -> None:
        self.endpoint = endpoint
        self.line = line
        self.security = security
        self.history_s = history_s
        self.server = Server()
        self.idx = 0
        self._nodes: dict[str, ua.NodeId] = {}
        self._scan: dict[str, int] = dict.fromkeys(MACHINES, 0)

    async def start(self) -> None:
        """Build the address space and listen; OSError if the endpoint's port is taken."""
        check_port_free(self.endpoint)
        server = self.server
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("linetwin simulated pilot line")
        await apply_security(server, self.security)
        self.idx = await server.register_namespace(NAMESPACE)
        root = await server.nodes.objects.add_object(
            node_id("PilotLine", self.idx), qname("PilotLine", self.idx)
        )
        for machine in MACHINES:
            await self._add_machine(root, machine)
        await historize(server, self._nodes.values(), self.history_s)
        await server.start()

    async def stop(self) -> None:
        await self.server.stop()

    async def _add_machine(self, root: Node, machine: str) -> None:
        idx = self.idx
        obj = await root.add_object(node_id(machine, idx), qname(OBJECT_NAMES[machine], idx))
        setpoints = await obj.add_folder(node_id(f"{machine}.setpoints", idx), qname("Setpoints", idx))
        for signal in SIGNALS:
            if signal.machine == machine:
                parent = setpoints if signal.setpoint else obj
                await self._add_analog(parent, signal.column, signal.name, signal.unit, signal)
        position = Signal(machine, "roll_position", "m", 0, 200, "position along the roll")
        await self._add_analog(obj, position.column, position.name, "m", position)
        for name, value, vtype in (
            ("state", "starting", ua.VariantType.String),
            ("roll_id", "", ua.VariantType.String),
            ("scan_counter", 0, ua.VariantType.UInt64),
        ):
            node = await obj.add_variable(
                node_id(f"{machine}.{name}", idx),
                qname(browse_name(name), idx),
                ua.Variant(value, vtype),
            )
            self._nodes[f"{machine}.{name}"] = node.nodeid

    async def _add_analog(self, parent: Node, column: str, name: str, unit: str, signal: Signal) -> None:
        write = self.line.write_setpoint if signal.setpoint else None
        self._nodes[column] = await add_analog(
            self.server,
            parent,
            self.idx,
            column,
            name,
            signal.meaning,
            self.line.setpoints.get(column, 0.0),
            unit,
            (signal.low, signal.high),
            write,
        )

    async def publish(self, tick: Tick, when: datetime) -> None:
        """Write one tick: every process value of every machine with SourceTimestamp ``when``."""
        server = self.server
        now = datetime.now(UTC)
        for column, value in tick.values.items():
            if column in SETPOINT_SIGNALS:
                continue
            machine, name = column.split(".", 1)
            status = HELD if (not tick.gauge_ok and name in GAUGE_SIGNALS) else GOOD
            dv = ua.DataValue(
                ua.Variant(value, ua.VariantType.Double),
                StatusCode=status,
                SourceTimestamp=ua_time(when),
                ServerTimestamp=ua_time(now),
            )
            await server.write_attribute_value(self._nodes[column], dv)
        for column, label in tick.text.items():
            dv = ua.DataValue(
                ua.Variant(label, ua.VariantType.String),
                SourceTimestamp=ua_time(when),
                ServerTimestamp=ua_time(now),
            )
            await server.write_attribute_value(self._nodes[column], dv)
        for machine in MACHINES:
            self._scan[machine] += 1
            dv = ua.DataValue(
                ua.Variant(self._scan[machine], ua.VariantType.UInt64),
                SourceTimestamp=ua_time(when),
                ServerTimestamp=ua_time(now),
            )
            await server.write_attribute_value(self._nodes[f"{machine}.scan_counter"], dv)
