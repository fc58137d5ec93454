"""Push approved setpoints to the simulated plant over OPC UA, and only when ``twin.allow_setpoint_push``.

The target is ``plant.opcua_endpoint`` (the simulator), never the connectors' endpoints of a real line.
Node ids follow docs/address-space.md: ``ns=<urn:linetwin:pilotline>;s=<machine>.<setpoint>``. The server
refuses a value outside the setpoint's EURange with BadOutOfRange; that refusal is passed on as is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from asyncua import Client, ua

from core.errors import LinetwinError

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:linetwin:pilotline"
SETPOINT_NODES = {
    "pump_flow": "coater1.pump_flow_setpoint",
    "web_speed": "coater1.web_speed_setpoint",
    "dryer_zone1_temperature": "coater1.dryer_zone1_setpoint",
    "dryer_zone2_temperature": "coater1.dryer_zone2_setpoint",
    "dryer_zone3_temperature": "coater1.dryer_zone3_setpoint",
    "line_load": "calender1.line_load_setpoint",
    "roll_temperature": "calender1.roll_temperature_setpoint",
}


class SetpointRefused(LinetwinError):
    """The plant refused a setpoint, or cannot be reached."""


async def push_setpoints(endpoint: str, setpoints: Mapping[str, float], who: str) -> None:
    """Write each setpoint as a Double; the first refusal stops the push and names the setpoint."""
    unknown = sorted(set(setpoints) - set(SETPOINT_NODES))
    if unknown:
        raise SetpointRefused(
            f"not a plant setpoint: {', '.join(unknown)}; known: {', '.join(SETPOINT_NODES)}"
        )
    client = Client(endpoint, timeout=5)
    try:
        await client.connect()
    except (OSError, TimeoutError, ua.UaError) as exc:
        raise SetpointRefused(f"cannot reach the plant at {endpoint}: {exc!r}") from None
    try:
        index = await client.get_namespace_index(NAMESPACE_URI)
        for name, value in setpoints.items():
            node = client.get_node(f"ns={index};s={SETPOINT_NODES[name]}")
            try:
                await node.write_value(ua.DataValue(ua.Variant(float(value), ua.VariantType.Double)))
            except ua.UaStatusCodeError as exc:
                raise SetpointRefused(f"the plant refused {name} = {value}: {exc}") from None
            log.warning("setpoint pushed to the plant", extra={"setpoint": name, "value": value, "by": who})
    finally:
        await client.disconnect()
