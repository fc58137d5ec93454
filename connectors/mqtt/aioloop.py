"""Run a paho client's network I/O on the asyncio loop rather than in paho's own thread.

Why: ``loop_start``'s thread does a ``select()`` per packet, wakes through a socket pair for every packet
another thread queues (each PUBACK sent after a write), and its messages must cross to the loop, all
under one interpreter lock. On the loop, a readable socket is read packet after packet while its
:class:`~connectors.mqtt.bufferedsocket.BufferedSocket` holds bytes, the PUBACKs of a flush go out in one
``loop_write``, and the handlers run where the pipeline lives.
``twin bench ingest`` measures the two side by side ("raw client" and "raw on loop").

paho provides the hooks for this (``on_socket_*``, ``loop_read``/``loop_write``/``loop_misc``). What it
leaves to the application, and this module does, is what ``loop_forever`` would otherwise do: reconnect
after a loss with the same doubling back-off, cut short when the broker's port accepts again
(``core.backoff``), using paho's own ``reconnect()`` in a worker thread, since it blocks on the TCP connect
and the TLS handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from connectors.mqtt.bufferedsocket import BufferedClient
from connectors.mqtt.client import certificate_refusal
from core.backoff import wait_or_return

log = logging.getLogger(__name__)

#: Packets read per readable event before other tasks get a turn: ~50 µs each, so a few ms at most.
READ_BURST = 100
#: How often keepalive is checked (``loop_misc``); paho's own loop checks once per second too.
MISC_INTERVAL_S = 1.0


class AsyncioNetwork:
    """Drives one paho client on the running loop: connect, read, write, keepalive, reconnect.

    The client must be a :class:`~connectors.mqtt.bufferedsocket.BufferedClient`: what its socket holds
    is read before the loop waits for the kernel's next bytes.

    After ``connect_async`` (see ``connectors.mqtt.client.connect``) await :meth:`run` or call
    :meth:`start`; stop intake with :meth:`pause` and leave with :meth:`stop`, which sends what is queued
    (PUBACKs) and disconnects. A refusal no retry can cure (:meth:`fail`, an untrusted certificate)
    ends :meth:`run` with ``MqttRefused``.
    """

    def __init__(self, client: BufferedClient, min_delay_s: float, max_delay_s: float) -> None:
        self.client = client
        self.loop = asyncio.get_running_loop()
        self._min_delay_s = min_delay_s
        self._max_delay_s = max_delay_s
        self._reading = True
        self._lost = asyncio.Event()
        self._fd: int | None = None
        self._pending: Callable[[], int] = lambda: 0
        self._read_on: asyncio.Handle | None = None
        self._loop_thread = threading.get_ident()
        self._supervisor: asyncio.Task[None] | None = None
        self._connecting: asyncio.Future[mqtt.MQTTErrorCode] | None = None
        self._failure: Exception | None = None
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    def start(self) -> None:
        """Run in a task of its own."""
        self._supervisor = self.loop.create_task(self.run())

    def fail(self, error: Exception) -> None:
        """End :meth:`run` with ``error``: e.g. the broker refused the credentials."""
        self._failure = error
        self._lost.set()

    def pause(self) -> None:
        """Read no more messages; what is queued to send (acknowledgements) still goes out."""
        self._reading = False
        if self._fd is not None:
            self.loop.remove_reader(self._fd)

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Send what is queued, disconnect, and stop reconnecting."""
        self.pause()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._connecting is not None:  # a connect in the worker thread ends on its own timeout
            with contextlib.suppress(OSError):
                await self._connecting
        self._lost.clear()
        self.client.disconnect()  # queued behind the acknowledgements; the write after it closes the socket
        if self.client.socket() is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._lost.wait()
        if self._fd is not None:  # the broker never took the DISCONNECT: let go of the socket anyway
            self._forget(self._fd)

    async def run(self) -> None:
        """Connect, reconnect after a loss with back-off, and keep the session alive."""
        delay = self._min_delay_s
        while True:
            self._connecting = asyncio.ensure_future(asyncio.to_thread(self.client.reconnect))
            try:
                await asyncio.shield(self._connecting)
            except ssl.SSLCertVerificationError as exc:
                raise certificate_refusal(self.client, exc) from None
            except OSError as exc:
                log.warning("MQTT connect failed: %s; retrying in %.0f s", exc, delay)
            else:
                if await self._keep_alive():  # the broker took us: this loss starts the back-off anew
                    delay = self._min_delay_s
            await wait_or_return(delay, self.client.host, self.client.port)
            delay = min(delay * 2, self._max_delay_s)

    async def _keep_alive(self) -> bool:
        """Serve one connection until it is lost; whether the broker accepted it on the way."""
        accepted = False
        self._lost.clear()
        while self._failure is None and self.client.socket() is not None:
            accepted = accepted or self.client.is_connected()
            self.client.loop_misc()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MISC_INTERVAL_S):
                    await self._lost.wait()
        # checked after the loop too: the loop may read the refusing CONNACK before ``reconnect()``'s
        # worker thread has handed back, so the socket can be gone before this method starts
        if self._failure is not None:
            raise self._failure
        return accepted

    def _read(self) -> None:
        """Read packets while bytes are held, at most a burst per turn of the loop."""
        loop_read, pending = self.client.loop_read, self._pending
        for _ in range(READ_BURST):
            if not self._reading or self._fd is None or loop_read() != mqtt.MQTT_ERR_SUCCESS:
                return  # paused, or lost (the socket is closed)
            if not pending():
                return  # the kernel's next bytes wake the loop
        # held bytes wake nobody: read on after the other tasks' turn (once, though readiness of the
        # socket may run this again before then)
        if self._read_on is None:
            self._read_on = self.loop.call_soon(self._read_held)

    def _read_held(self) -> None:
        self._read_on = None
        self._read()

    def _on_socket_open(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._pending = sock.pending
        self._on_loop(self._watch, sock.fileno())

    def _on_socket_close(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._forget, sock.fileno())

    def _on_register_write(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self._want_write, sock.fileno())

    def _on_unregister_write(self, client: mqtt.Client, userdata: object, sock: Any) -> None:
        self._on_loop(self.loop.remove_writer, sock.fileno())

    def _watch(self, fd: int) -> None:
        self._fd = fd
        if self._reading:
            self.loop.add_reader(fd, self._read)

    def _want_write(self, fd: int) -> None:
        self.loop.add_writer(fd, self.client.loop_write)

    def _forget(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        if fd == self._fd:
            self._fd = None
        self._lost.set()

    def _on_loop(self, action: Callable[[int], object], fd: int) -> None:
        """paho calls the socket hooks from ``reconnect()`` in the worker thread too."""
        if threading.get_ident() == self._loop_thread:
            action(fd)
        else:
            self.loop.call_soon_threadsafe(action, fd)
