"""paho's client reading its socket in large chunks rather than in three or four system calls per packet.

paho reads a packet with one ``recv`` for its command byte, one per byte of its remaining length and one
for its body: three or four system calls for a 200-byte cycler message, each costing more than paho's
own handling of the packet on this machine kind. :class:`BufferedSocket` takes what the kernel holds
(up to :data:`CHUNK_BYTES`) in one call and serves paho's small reads from memory.

paho is made for socket-like objects (its ``SocketLike`` protocol; its own WebSocket transport is one), and
its loop asks ``pending()`` as it does of a TLS socket, so bytes held here are read at once rather than
left waiting for a ``select`` that cannot see them. Hand-written because paho offers no buffered
transport and a file object (``socket.makefile``) cannot read without blocking.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

#: What one ``recv`` may take: a few hundred cycler messages.
CHUNK_BYTES = 65_536


class BufferedSocket:
    """A socket (plain or TLS) whose reads come from one buffer refilled a chunk at a time."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._buffer = b""
        self._position = 0
        self._tls_pending = getattr(sock, "pending", None)

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; like ``socket.recv`` it raises ``BlockingIOError`` (TLS:
        ``SSLWantReadError``) when nothing is there, and returns ``b""`` once the peer has closed."""
        buffer, position = self._buffer, self._position
        if position >= len(buffer):
            buffer, position = self.sock.recv(CHUNK_BYTES), 0
            self._buffer = buffer
        self._position = position + size
        return buffer[position : position + size]

    def pending(self) -> int:
        """Bytes readable without a system call: those held here, and those TLS has decrypted."""
        held = max(len(self._buffer) - self._position, 0)
        return held if self._tls_pending is None else held + int(self._tls_pending())

    def send(self, data: bytes) -> int:
        return int(self.sock.send(data))

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def setblocking(self, flag: bool) -> None:
        self.sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:
        """Anything else (``getpeercert``, ``settimeout``, ...) is the socket's own."""
        return getattr(self.sock, name)


class BufferedClient(mqtt.Client):
    """paho's client with its connection read through :class:`BufferedSocket`."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())
