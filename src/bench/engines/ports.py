"""A free TCP port on loopback, for the servers and rank channels a cell starts itself."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a race with another process that
    binds it first is possible, and fails loudly when the server starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
