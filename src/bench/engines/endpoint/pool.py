"""engine=http's connections: one keep-alive connection per client thread (`http.client`,
stdlib), opened on the thread's first request with TCP_NODELAY, each request's headers and
body going out in one write, and each request's reads bounded by its deadline.

The client's own cost per request with a server that answers at once is measured by
`benchmarks/http_client_overhead.py` (docs/engines.md): this is the timed path, so a request
reuses its thread's connection and a broken one is dropped, to be reopened by the next.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from typing import Any

BODY_READ = 1 << 16  # bytes a non-streamed body is read by, each read under the deadline


class _OneWrite:
    """http.client sends a request's headers and its body in two writes: with TCP_NODELAY,
    two segments, two system calls and two wake-ups of the server per request (measured at
    ~50 us a request on loopback, a tenth of a null server's round trip). A body in memory
    goes out with its headers in one write instead (as Python 2's http client did)."""

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if not isinstance(message_body, bytes) or encode_chunked:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
            return
        buffer = self._buffer  # type: ignore[attr-defined]
        buffer.extend((b"", b""))
        head = b"\r\n".join(buffer)
        del buffer[:]
        self.send(head + message_body)  # type: ignore[attr-defined]


class OneWriteHTTPConnection(_OneWrite, http.client.HTTPConnection):
    pass


class OneWriteHTTPSConnection(_OneWrite, http.client.HTTPSConnection):
    pass


class RequestTimeout(TimeoutError):
    """No complete answer within the request's timeout, counted from the send to its last
    byte: a socket's own timeout bounds each read alone, so a server trickling a byte a
    second would never trip it."""


class Deadline:
    """One request's deadline: each blocking read gets the time left as its socket timeout,
    and a read that begins after the deadline fails the request at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.perf_counter() + seconds

    def arm(self, connection: http.client.HTTPConnection) -> None:
        left = self.at - time.perf_counter()
        if left <= 0:
            raise RequestTimeout(f"no complete answer within {self.seconds:g} s")
        if connection.sock is not None:
            connection.sock.settimeout(left)

    def read_all(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> bytes:
        """The whole body, a read at a time, each under the time left. A body of known length
        is closed once read (read1 leaves it open at its last byte, and the connection would
        refuse its next request with ResponseNotReady)."""
        parts = []
        while True:
            if response.length == 0:
                response.read()  # nothing left to read: this closes the response
                return b"".join(parts)
            self.arm(connection)
            if not (part := response.read1(BODY_READ)):
                return b"".join(parts)
            parts.append(part)


class ConnectionPool:
    """A connection per client thread to one server, every one of them closed by close()."""

    def __init__(self, url: urllib.parse.SplitResult) -> None:
        # the server's root (scheme, host:port, path prefix); server mode sets its port
        # before the first connection opens
        self.url = url
        self._local = threading.local()  # per client thread: its connection
        self._connections: list[http.client.HTTPConnection] = []

    def base(self) -> str:
        """The server's root as a URL, without a trailing slash."""
        return f"{self.url.scheme}://{self.url.netloc}{self.url.path.rstrip('/')}"

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        """This thread's connection, opened on its first request."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = OneWriteHTTPSConnection if self.url.scheme == "https" else OneWriteHTTPConnection
            connection = self._local.connection = kind(self.url.netloc, timeout=timeout)
            connection.connect()
            # a request goes out at once, not held back for an ACK (Nagle)
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connections.append(connection)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def drop(self) -> None:
        """Close this thread's connection (it failed, or its answer was left unread): the
        thread's next request opens another."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def call(
        self,
        method: str,
        path: str,
        payload: bytes | None,
        headers: dict[str, str],
        timeout: float,
    ) -> tuple[int, bytes]:
        """One call outside the timed path (health, readiness, listings): (status, body); a
        broken connection is reopened next time."""
        connection = self.connection(timeout)
        try:
            connection.request(method, self.url.path.rstrip("/") + path, payload, headers)
            response = connection.getresponse()
            return response.status, response.read()
        except Exception:
            self.drop()
            raise

    def close(self) -> None:
        for connection in self._connections:
            connection.close()
