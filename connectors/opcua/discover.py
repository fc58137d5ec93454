"""Browse-driven discovery: the server's AnalogItems and their EngineeringUnits as a tag map.

A machine is an object that has a ``ScanCounter`` variable or AnalogItems of its own, found anywhere
below the Objects folder (``Objects/PilotLine/Coater1``); the Server object is skipped. Every variable
below a machine (sub-folders such as ``Setpoints`` included) that carries an ``EngineeringUnits``
property becomes a signal named by its BrowseName in snake_case (``DryerZone1Temperature`` →
``dryer_zone1_temperature``, machine ``Coater1`` → ``coater1``), with the unit from EUInformation's
DisplayName. A ``RollId`` variable carries the roll being processed.
"""

from __future__ import annotations

import contextlib
import json
import re

from asyncua import Client, Node, ua

from connectors.tagmap import OpcUaMachine, OpcUaTag
from core import units

_SERVER = ua.NodeId.from_string(f"i={ua.ObjectIds.Server}")
_ANALOG_ITEM = ua.NodeId.from_string(f"i={ua.ObjectIds.AnalogItemType}")
_SCAN_COUNTER = {"scancounter", "scan_counter"}
_ROLL_ID = {"rollid", "roll_id"}
_MAX_DEPTH = 6


def snake_case(name: str) -> str:
    """``DryLoading`` → ``dry_loading``, ``Zone1`` → ``zone1``, ``pump flow`` → ``pump_flow``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


async def discover(client: Client) -> list[OpcUaMachine]:
    """Browse the connected server and return one entry per machine that has analog items."""
    machines: list[OpcUaMachine] = []
    await _find_machines(client, client.nodes.objects, machines, 0)
    return machines


async def _find_machines(client: Client, node: Node, machines: list[OpcUaMachine], depth: int) -> None:
    children = [c for c in await node.get_children_descriptions() if c.NodeId != _SERVER]
    is_machine = depth > 0 and any(
        c.NodeClass == ua.NodeClass.Variable
        and (c.BrowseName.Name.lower() in _SCAN_COUNTER or c.TypeDefinition == _ANALOG_ITEM)
        for c in children
    )
    if is_machine:
        name = (await node.read_browse_name()).Name
        machine = OpcUaMachine(machine=snake_case(name))
        await _collect(client, node, machine, top=True)
        if machine.tags:
            machines.append(machine)
        return
    if depth < _MAX_DEPTH:
        for child in children:
            if child.NodeClass == ua.NodeClass.Object:
                await _find_machines(client, client.get_node(child.NodeId), machines, depth + 1)


async def _collect(client: Client, node: Node, machine: OpcUaMachine, top: bool) -> None:
    for child in await node.get_children_descriptions():
        name = child.BrowseName.Name
        node_id = child.NodeId.to_string()
        if child.NodeClass == ua.NodeClass.Variable:
            if top and name.lower() in _SCAN_COUNTER:
                machine.scan_counter = node_id
            elif top and name.lower() in _ROLL_ID:
                machine.roll_id = node_id
            elif (unit := await _engineering_unit(client, client.get_node(child.NodeId))) is not None:
                machine.tags.append(OpcUaTag(node=node_id, signal=snake_case(name), unit=unit))
        elif child.NodeClass == ua.NodeClass.Object:
            await _collect(client, client.get_node(child.NodeId), machine, top=False)


async def _engineering_unit(client: Client, node: Node) -> str | None:
    for prop in await node.get_children_descriptions(refs=ua.ObjectIds.HasProperty):
        if prop.BrowseName.Name == "EngineeringUnits":
            info = await client.get_node(prop.NodeId).read_value()
            if isinstance(info, ua.EUInformation):
                return unit_of(info)
    return None


def unit_of(info: ua.EUInformation) -> str:
    """The UCUM code of an EUInformation: from its UNECE UnitId, else from its DisplayName (``mg/cm²``);
    a unit linetwin's table does not know is kept as the server wrote it, for the user to check."""
    if info.NamespaceUri == units.UNECE_NAMESPACE and info.UnitId > 0:
        with contextlib.suppress(units.UnitError):
            return units.from_unece(units.unece_code(info.UnitId))
    text = info.DisplayName.Text or ""
    with contextlib.suppress(units.UnitError):
        return units.from_unece(units.to_unece(text))
    return text or str(info.UnitId)


def render(machines: list[OpcUaMachine], endpoint: str) -> str:
    """A ready tag map file (TOML) for the discovered machines."""
    lines = [f"# Tag map discovered from {endpoint}; edit signal names and units as needed.", ""]
    for machine in machines:
        lines += ["[[opcua]]", f"machine = {_q(machine.machine)}"]
        if machine.scan_counter:
            lines.append(f"scan_counter = {_q(machine.scan_counter)}")
        if machine.roll_id:
            lines.append(f"roll_id = {_q(machine.roll_id)}")
        for tag in machine.tags:
            lines += [
                "",
                "[[opcua.tags]]",
                f"node = {_q(tag.node)}",
                f"signal = {_q(tag.signal)}",
                f"unit = {_q(tag.unit)}",
            ]
        lines.append("")
    return "\n".join(lines)


def render_description(machines: list[OpcUaMachine], endpoint: str, site: str, area: str, line: str) -> str:
    """A starting line description (``core.linedesc``) of the discovered machines: one step per machine,
    each analog item a signal with its unit. The user puts the steps in material-flow order, assigns each
    step its kind and each signal its role, and adds spec limits, setpoints and the material flow."""
    out = [
        f"# Line description discovered from {endpoint}. Put the steps in material-flow order, set each",
        "# step's kind (slot_die_coater, calender, formation, ...; docs/lines.md), each signal's role where",
        "# it differs from its name, and add spec limits, setpoints and the [[flow]] between steps.",
        "",
        f"site = {_q(site)}",
        f"area = {_q(area)}",
        f"line = {_q(line)}",
        "",
    ]
    for machine in machines:
        out += ["[[steps]]", f"id = {_q(machine.machine)}", 'kind = "unassigned"', ""]
        for tag in machine.tags:
            out += ["[[steps.signals]]", f"name = {_q(tag.signal)}", f"unit = {_q(tag.unit)}", ""]
    return "\n".join(out)


def _q(text: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML), UTF-8 kept readable (``µm``)."""
    return json.dumps(text, ensure_ascii=False)
