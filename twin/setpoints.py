"""Push approved setpoints to the simulated plant over OPC UA, and only when ``twin.allow_setpoint_push``.

Which setpoints exist, their limits and the model input each sets come from the line description
(``core.linedesc``); a value outside its limits is refused here, before the plant is contacted. The
target is ``plant.opcua_endpoint`` (the simulator), never the connectors' endpoints of a real line. Node
ids follow docs/address-space.md: ``ns=<urn:linetwin:pilotline>;s=<step>.<signal>``. The server refuses
a value outside the setpoint's EURange with BadOutOfRange; that refusal is passed on as is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from asyncua import Client, ua

from connectors.opcua.security import configure, refusal
from core.errors import LinetwinError
from core.linedesc import LineDescription
from core.settings import OpcUaSettings

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:linetwin:pilotline"


class SetpointRefused(LinetwinError):
    """The plant refused a setpoint, or cannot be reached."""


def setpoint_nodes(description: LineDescription, setpoints: Mapping[str, float]) -> dict[str, str]:
    """Model input -> ``<step>.<signal>`` of each setpoint; refuses unknown names and values out of limits."""
    known = description.setpoints()
    unknown = sorted(set(setpoints) - set(known))
    if unknown:
        raise SetpointRefused(f"not a plant setpoint: {', '.join(unknown)}; known: {', '.join(known)}")
    nodes = {}
    for name, value in setpoints.items():
        step, signal = known[name]
        limits = signal.setpoint
        assert limits is not None
        if not limits.low <= value <= limits.high:
            raise SetpointRefused(
                f"{name} = {value} is outside {step.id} {signal.name}'s limits {limits.low} to {limits.high}"
                f" {signal.unit}"
            )
        nodes[name] = f"{step.id}.{signal.name}"
    return nodes


async def push_setpoints(
    endpoint: str,
    setpoints: Mapping[str, float],
    who: str,
    description: LineDescription,
    security: OpcUaSettings,
) -> None:
    """Write each setpoint as a Double; the first refusal stops the push and names the setpoint.

    The twin connects as ingest does (``[opcua]``: policy, mode, client identity and trust store), so a
    plant that only takes signed and encrypted sessions takes the push too.
    """
    nodes = setpoint_nodes(description, setpoints)
    client = Client(endpoint, timeout=5)
    try:
        await configure(client, security)
        await client.connect()
    except (OSError, TimeoutError, ua.UaError) as exc:
        refused = refusal(exc)
        raise SetpointRefused(
            str(refused) if refused else f"cannot reach the plant at {endpoint}: {exc!r}"
        ) from None
    except LinetwinError as exc:
        raise SetpointRefused(str(exc)) from None
    try:
        index = await client.get_namespace_index(NAMESPACE_URI)
        for name, value in setpoints.items():
            node = client.get_node(f"ns={index};s={nodes[name]}")
            try:
                await node.write_value(ua.DataValue(ua.Variant(float(value), ua.VariantType.Double)))
            except ua.UaStatusCodeError as exc:
                raise SetpointRefused(f"the plant refused {name} = {value}: {exc}") from None
            log.warning("setpoint pushed to the plant", extra={"setpoint": name, "value": value, "by": who})
    finally:
        await client.disconnect()
