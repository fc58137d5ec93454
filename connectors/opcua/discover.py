"""Browse-driven discovery: the server's AnalogItems and their EngineeringUnits as a tag map.

Each object directly under the Objects folder (except Server) is a machine; every variable below it that
carries an ``EngineeringUnits`` property becomes a signal named by its browse path in snake_case
(``Coater1/Dryer/Zone1/Temperature`` → machine ``coater1``, signal ``dryer_zone1_temperature``) with the
unit from EUInformation's DisplayName. A ``ScanCounter`` variable numbers the machine's ticks; a
``RollId`` variable carries the roll being processed.
"""

from __future__ import annotations

import json
import re

from asyncua import Client, Node, ua

from connectors.tagmap import OpcUaMachine, OpcUaTag

_SERVER = ua.NodeId.from_string(f"i={ua.ObjectIds.Server}")
_SCAN_COUNTER = {"scancounter", "scan_counter"}
_ROLL_ID = {"rollid", "roll_id"}


def snake_case(name: str) -> str:
    """``DryLoading`` → ``dry_loading``, ``Zone1`` → ``zone1``, ``pump flow`` → ``pump_flow``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_")


async def discover(client: Client) -> list[OpcUaMachine]:
    """Browse the connected server and return one entry per machine that has analog items."""
    machines = []
    for child in await client.nodes.objects.get_children_descriptions():
        if child.NodeId == _SERVER or child.NodeClass != ua.NodeClass.Object:
            continue
        machine = OpcUaMachine(machine=snake_case(child.BrowseName.Name))
        await _walk(client, client.get_node(child.NodeId), [], machine)
        if machine.tags:
            machines.append(machine)
    return machines


async def _walk(client: Client, node: Node, path: list[str], machine: OpcUaMachine) -> None:
    for child in await node.get_children_descriptions():
        name = child.BrowseName.Name
        child_node = client.get_node(child.NodeId)
        node_id = child.NodeId.to_string()
        if child.NodeClass == ua.NodeClass.Variable:
            if not path and name.lower() in _SCAN_COUNTER:
                machine.scan_counter = node_id
                continue
            if not path and name.lower() in _ROLL_ID:
                machine.roll_id = node_id
                continue
            unit = await _engineering_unit(client, child_node)
            if unit is not None:
                signal = "_".join(snake_case(part) for part in [*path, name])
                machine.tags.append(OpcUaTag(node=node_id, signal=signal, unit=unit))
        elif child.NodeClass == ua.NodeClass.Object:
            await _walk(client, child_node, [*path, name], machine)


async def _engineering_unit(client: Client, node: Node) -> str | None:
    for prop in await node.get_children_descriptions(refs=ua.ObjectIds.HasProperty):
        if prop.BrowseName.Name == "EngineeringUnits":
            info = await client.get_node(prop.NodeId).read_value()
            if isinstance(info, ua.EUInformation):
                return info.DisplayName.Text or str(info.UnitId)
    return None


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


def _q(text: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(text)
