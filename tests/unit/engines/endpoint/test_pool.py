"""engine=http's connection pool: a request with a body in memory leaves in one write."""

from __future__ import annotations

import io

from bench.engines.endpoint.pool import OneWriteHTTPConnection


class _Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))


def _connection() -> tuple[OneWriteHTTPConnection, _Recorder]:
    connection = OneWriteHTTPConnection("127.0.0.1", 9)
    connection.sock = recorder = _Recorder()  # type: ignore[assignment]
    return connection, recorder


def test_headers_and_body_go_out_in_one_write() -> None:
    connection, recorder = _connection()
    connection.request("POST", "/v1/completions", b'{"prompt": [1, 2]}', {"X-A": "1"})
    (write,) = recorder.writes
    head, _, body = write.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/completions HTTP/1.1\r\n")
    assert b"Content-Length: 18" in head and b"X-A: 1" in head
    assert body == b'{"prompt": [1, 2]}'


def test_a_streamed_body_keeps_http_clients_own_writes() -> None:
    connection, recorder = _connection()
    connection.request("POST", "/x", io.BytesIO(b"abc"), {"Content-Length": "3"})
    assert recorder.writes[0].endswith(b"\r\n\r\n") and b"".join(recorder.writes[1:]) == b"abc"
