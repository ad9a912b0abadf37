"""A small OpenAI-compatible test server (not a model): /v1/completions, /v1/chat/completions
and /v1/embeddings on loopback, with known delays and injected faults, so engine=http can be
checked against a truth it did not produce.

Each completion streams `max_tokens` tokens per prompt over server-sent events, `token_ms`
apart after `first_token_ms`, then a usage chunk; a share of requests fail with HTTP 500
(`fail`), a share sleep past any client timeout (`hang`), and `short` makes it stop one token
early (a server that ignores min_tokens), `--extra-tokens N` streams N more than asked and
`--no-usage` never reports usage. `--log FILE` appends every request body it receives (a
JSON line each), `--serial` serves one request at a time (a server of known capacity), and a
body with vLLM's `return_token_ids` gets each chunk's token ids. `null` answers every
request at once with one token: the client's own overhead is all that is left.

    python -m tests.support.openai_server --port 0 [--startup-s 1] [--fail 0.1] [--hang 0.05]
The bound port is printed on stdout as `listening on PORT` once it accepts connections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Behaviour:
    def __init__(self, args: argparse.Namespace) -> None:
        self.first_token_s = args.first_token_ms / 1000
        self.token_s = args.token_ms / 1000
        self.fail, self.hang, self.hang_s = args.fail, args.hang, args.hang_s
        self.short = args.short
        self.null = args.null
        self.token = args.require_token
        self.random = random.Random(args.seed)
        self.lock = threading.Lock()
        self.served = 0
        self.running = 0  # requests being answered now (its /metrics reports them)
        self.log = open(args.log, "a") if args.log else None  # noqa: SIM115 (the server's life)
        self.usage = not args.no_usage
        self.extra_tokens = args.extra_tokens
        self.stream_tokens = args.stream_tokens  # stream at most this many (0: no limit)
        self.usage_says_asked = args.usage_says_asked  # usage claims max_tokens whatever came
        self.echo_auth = args.echo_auth  # a 401 whose body echoes the Authorization header
        # one request at a time, first come first served: a server of known capacity
        self.serial = threading.Lock() if args.serial else None

    def record(self, path: str, body: dict[str, Any]) -> None:
        """Log what the server received, a JSON line per request, with its arrival time."""
        if self.log is not None:
            with self.lock:
                entry = {"path": path, "at": time.monotonic(), "body": body}
                self.log.write(json.dumps(entry) + "\n")
                self.log.flush()

    def fate(self) -> str:
        """ok, fail or hang for the next request (seeded, so a run is repeatable)."""
        with self.lock:
            self.served += 1
            draw = self.random.random()
        if draw < self.fail:
            return "fail"
        if draw < self.fail + self.hang:
            return "hang"
        return "ok"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers
    behaviour: Behaviour

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # each event goes out when written, as real servers do (Nagle would hold a small
        # chunk back until the client's delayed ACK of the one before: +40 ms)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/metrics":  # vLLM's names, as Prometheus text
            b = self.behaviour
            page = (
                "# TYPE vllm:num_requests_running gauge\n"
                f'vllm:num_requests_running{{engine="0"}} {b.running}\n'
                f'vllm:num_requests_waiting{{engine="0"}} 0\n'
                f'vllm:kv_cache_usage_perc{{engine="0"}} {min(1.0, b.running / 8)}\n'
                f'vllm:prefix_cache_queries_total{{engine="0"}} {100 * b.served}\n'
                f'vllm:prefix_cache_hits_total{{engine="0"}} {25 * b.served}\n'
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if self.path in ("/health", "/v1/models"):
            self._json(200, {"object": "list", "data": [{"id": "test-model"}]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        behaviour = self.behaviour
        if behaviour.token and self.headers.get("Authorization") != f"Bearer {behaviour.token}":
            said = f": got {self.headers.get('Authorization')}" if behaviour.echo_auth else ""
            self._json(401, {"error": {"message": f"bad or missing bearer token{said}"}})
            return
        behaviour.record(self.path, body)
        fate = "ok" if behaviour.null else behaviour.fate()
        if fate == "fail":
            self._json(500, {"error": {"message": "injected failure"}})
            return
        if fate == "hang":
            time.sleep(behaviour.hang_s)
        if self.path == "/v1/embeddings":
            inputs = body.get("input") or []
            count = len(inputs) if isinstance(inputs, list) and inputs else 1
            data = [{"index": i, "embedding": [0.0] * 8} for i in range(count)]
            self._json(200, {"data": data, "usage": {"prompt_tokens": 0}})
            return
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._json(404, {"error": "not found"})
            return
        with behaviour.lock:
            behaviour.running += 1
        try:
            self._serve(body)
        finally:
            with behaviour.lock:
                behaviour.running -= 1

    def _serve(self, body: dict[str, Any]) -> None:
        behaviour = self.behaviour
        if behaviour.serial is None:
            self._complete(body, chat=self.path.endswith("chat/completions"))
            return
        with behaviour.serial:
            self._complete(body, chat=self.path.endswith("chat/completions"))

    def _complete(self, body: dict[str, Any], chat: bool) -> None:
        behaviour = self.behaviour
        prompts = body.get("prompt", [[1]]) if not chat else [body.get("messages")]
        if prompts and isinstance(prompts[0], int):  # one prompt of token ids
            prompts = [prompts]
        count = len(prompts) if isinstance(prompts, list) else 1
        tokens = 1 if behaviour.null else int(body.get("max_tokens", 16))
        made = (tokens - 1 if behaviour.short else tokens) + behaviour.extra_tokens
        made = min(made, behaviour.stream_tokens or made)
        claimed = tokens if behaviour.usage_says_asked else made
        with_ids = bool(body.get("return_token_ids"))  # vLLM's: each chunk carries its ids
        if not body.get("stream"):
            if not behaviour.null:
                time.sleep(behaviour.first_token_s + behaviour.token_s * (made - 1))
            choices = [{"index": i, "text": "x" * made} for i in range(count)]
            usage = {"prompt_tokens": 0, "completion_tokens": claimed * count}
            self._json(200, {"choices": choices, **({"usage": usage} if behaviour.usage else {})})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for step in range(made):
            if not behaviour.null:
                time.sleep(behaviour.first_token_s if step == 0 else behaviour.token_s)
            for index in range(count):
                piece = {"delta": {"content": "x"}} if chat else {"text": "x"}
                if with_ids:
                    piece["token_ids"] = [1000 + step]
                self._event({"choices": [{"index": index, **piece}]})
        usage = {"prompt_tokens": 0, "completion_tokens": claimed * count}
        if behaviour.usage and (body.get("stream_options") or {}).get("include_usage"):
            self._event({"choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def check_streamed_row(row: dict[str, Any]) -> None:
    """A row measured against a test server run with `--first-token-ms 20 --token-ms 4`
    (opt_tiny: 8 tokens): ok, no failed request, TTFT and TPOT at that truth, and the P50
    latency they add up to."""
    assert row["status"] == "ok", row.get("error")
    assert row["device"] == "remote" and row["errors"] == 0
    assert 20 <= row["ttft_ms_p50"] < 40
    assert 4 <= row["tpot_ms_p50"] < 8
    e2e = row["ttft_ms_p50"] + (row["new_tokens"] - 1) * row["tpot_ms_p50"]
    assert abs(row["latency_ms_p50"] - e2e) <= 0.25 * e2e, (row["latency_ms_p50"], e2e)


def arguments(description: str) -> argparse.ArgumentParser:
    """The options every test server here takes: timing, faults, port, startup."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--startup-s", type=float, default=0.0, help="sleep before listening")
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument("--token-ms", type=float, default=5.0)
    parser.add_argument("--fail", type=float, default=0.0)
    parser.add_argument("--hang", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=5.0)
    parser.add_argument("--short", action="store_true")
    parser.add_argument("--null", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--require-token", default="", help="answer 401 without this bearer")
    parser.add_argument("--log", default="", help="append each request received (JSONL)")
    parser.add_argument("--no-usage", action="store_true", help="never report usage")
    parser.add_argument("--extra-tokens", type=int, default=0, help="stream more than asked")
    parser.add_argument("--serial", action="store_true", help="serve one request at a time")
    parser.add_argument("--stream-tokens", type=int, default=0, help="make at most this many")
    parser.add_argument(
        "--usage-says-asked", action="store_true", help="usage claims max_tokens, whatever came"
    )
    parser.add_argument("--echo-auth", action="store_true", help="a 401 echoes Authorization")
    return parser


def serve(handler: type[Handler], args: argparse.Namespace) -> int:
    """Listen on loopback, print the port, serve until interrupted."""
    time.sleep(args.startup_s)  # a server loading its model
    handler.behaviour = Behaviour(args)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def main() -> int:
    return serve(Handler, arguments(__doc__.splitlines()[0]).parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
