"""Reconnect back-off that still notices a service coming back at once.

Doubling the wait between attempts keeps a client from hammering a service that stays away, but after a
long outage it also waits up to the last doubled delay once the service is back (a broker down 7.8 s was
reconnected 7 s after it returned, at an 8 s back-off). So the wait is cut short when the service's TCP
port, closed when the wait began, accepts connections again: a probe costs one TCP handshake every
``PROBE_INTERVAL_S``, no session, and a service whose port stays open but refuses sessions still gets
the full back-off. No library does this small thing for both paho and asyncua, hence by hand.
"""

from __future__ import annotations

import asyncio
import contextlib

PROBE_INTERVAL_S = 0.25
PROBE_TIMEOUT_S = 0.2


async def port_accepts(host: str, port: int) -> bool:
    """Whether ``host:port`` accepts a TCP connection now (closed again at once)."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_or_return(delay_s: float, host: str, port: int) -> None:
    """Sleep ``delay_s``, or less: until the port, closed now, accepts again."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + delay_s
    if await port_accepts(host, port):  # open already: the service is up and refused; back off fully
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        return
    while (left := deadline - loop.time()) > 0:
        await asyncio.sleep(min(PROBE_INTERVAL_S, left))
        if await port_accepts(host, port):
            return
