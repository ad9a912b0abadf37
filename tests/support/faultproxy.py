"""An HTTP proxy on loopback that fails a fraction of requests, in front of the S3 emulator.

Faults, chosen at random (seeded) per request:
- before forwarding: answer 503 SlowDown (the request never reaches the server);
- after forwarding: the server did the work, but the client gets 500 InternalError, so a
  retried PUT lands twice (harmless: PUTs are idempotent) and nothing may be lost.
"""

from __future__ import annotations

import http.client
import random
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class FaultCounts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.before = 0
        self.after = 0

    @property
    def injected(self) -> int:
        return self.before + self.after


def _handler(upstream: str, rate: float, rng: random.Random, counts: FaultCounts) -> type:
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _proxy(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with counts.lock:
                counts.requests += 1
                roll = rng.random()
            if roll < rate / 2:
                with counts.lock:
                    counts.before += 1
                self._reply(503, SLOW_DOWN, [("Content-Type", "application/xml")])
                return
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            conn.close()
            if roll < rate:
                with counts.lock:
                    counts.after += 1
                self._reply(500, INTERNAL, [("Content-Type", "application/xml")])
                return
            self._reply(response.status, data, response.getheaders())

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy

    return Handler


@contextmanager
def fault_proxy(upstream: str, rate: float, seed: int = 0) -> Iterator[tuple[str, FaultCounts]]:
    """Serve on a free loopback port; yield (url, counts)."""
    counts = FaultCounts()
    handler = _handler(upstream, rate, random.Random(seed), counts)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counts
    finally:
        server.shutdown()
        server.server_close()
