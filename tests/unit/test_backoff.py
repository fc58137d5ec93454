"""The reconnect back-off sleeps its full delay unless the service's closed port opens meanwhile."""

from __future__ import annotations

import asyncio
import time

from core.backoff import wait_or_return
from core.localservices import free_port


async def test_the_wait_ends_soon_after_a_closed_port_opens() -> None:
    port = free_port()

    async def come_back() -> asyncio.Server:
        await asyncio.sleep(0.5)
        return await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)

    started = time.monotonic()
    server_task = asyncio.create_task(come_back())
    await wait_or_return(10.0, "127.0.0.1", port)
    waited = time.monotonic() - started
    (await server_task).close()
    assert 0.5 <= waited < 1.5


async def test_a_port_open_from_the_start_gets_the_full_back_off() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    await wait_or_return(1.0, "127.0.0.1", port)
    server.close()
    assert time.monotonic() - started >= 1.0
