"""An endpoint bench did not load: OpenAI-compatible HTTP (`/v1/completions`,
`/v1/chat/completions`, `/v1/embeddings`), measured from the client's side as the seeds'
endpoint studies were.

- A request is one HTTP call carrying what the cell's workload drew for it
  (bench.measure.workloads: a distinct prompt per request by default): `batch_size` prompts
  of token ids for completions and embeddings (a dataset's text as text), a conversation of
  text for chat (ids as words, the server's usage counts its tokens). Generation asks for
  the drawn output length (`max_tokens`, and with `exact_length` vLLM's `min_tokens` and
  `ignore_eos`); sampling is the server's default unless `temperature` / `top_p` are set.
  The body is encoded before the timed bracket. A base URL may end in `/v1` or not.
- Streaming (server-sent events, the default) stamps each chunk of the first prompt as it
  arrives: TTFT and TPOT are the client's, defined as for every engine (send -> first token;
  the gaps between tokens). Output tokens are the server's usage where it reports it, else
  counted from the stream (a chunk's token ids, else one per chunk); the row's token_source
  says which. A count other than the one asked fails the request (`check_usage`; else it is
  counted in token_mismatches): a server that stops early does not pass for fast.
- Client threads are the scenario's `threads`, each with its own keep-alive connection
  (`http.client`, stdlib); the client's own cost per request with a server that answers at
  once is measured by `benchmarks/http_client_overhead.py` (docs/engines.md).
- A request that gets an HTTP error, breaks off or passes its timeout (the scenario's
  `request_timeout_s`, else `timeout_s`, from send to the last byte: each read waits only
  for the time left) is a failed request: counted in the row's `errors` and `failed_share`
  and per ramp stage, flagged in `percentile_flags`, left out of the latency figures, so a
  ramp finds the first failure.
- Server mode (`server_command`): the cell starts the server itself (`{port}`, `{checkpoint}`,
  `{model}` and `{python}`, the cell's own interpreter, are filled in; the checkpoint is
  built from config like every engine's), polls `health_path` until it answers 200, and
  `load_s` is that time to healthy. After measuring it stops the server (SIGTERM, then
  SIGKILL after 30 s) and the row records its exit code; its output goes to the cell's
  stderr, so to the cell's log. The server leads a process group of its own in the cell's
  session (bench.engines.process_groups): stopped with its workers on every way out of the
  cell (close() after a failure, Ctrl-C or SIGTERM), ended by the executor with the cell's
  session when the cell is killed, and sent SIGTERM by the kernel when the cell dies.
- A chunk that carries its token ids (vLLM's `return_token_ids`) stamps each of them at its
  arrival; one without is taken for one token, as vLLM and TGI usually stream them (a server
  that packs several tokens into such a chunk gives a TPOT per chunk; its usage still counts
  the tokens).

The price is that of the instances behind the endpoint: the cell's `instance` (and
`price_per_hour=` when they are not in the catalog). Precision, device and TP degree are the
server's business: they are labels here, not settings.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.config import secrets
from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.config.tasks import task_of, token_prompts
from bench.engines import kserve
from bench.engines.base import (
    ANY_PRECISION,
    BOTH_DEVICES,
    MIXED_PRECISION,
    Capability,
    Engine,
    Inputs,
    LoadInfo,
    PrepareInfo,
    Reply,
    words_for,
)
from bench.engines.http_errors import HttpError
from bench.engines.process_groups import start_group, stop_group
from bench.engines.targets import TargetDraw, check_targets, target_draw

APIS = ("completions", "chat", "embeddings", "kserve")
STOP_GRACE_S = 30.0
REACH_TIMEOUT_S = 10.0  # how long an endpoint that should already run may take to answer


@dataclass(frozen=True)
class HttpOptions:
    url: str = "http://127.0.0.1:8000"  # the endpoint's base URL (server mode: its port is set)
    api: str = "completions"  # completions | chat | embeddings
    served_model: str = ""  # the request's "model" field; "" = the one model the server
    # lists at /v1/models, else model.checkpoint or model.name
    stream: bool = True  # server-sent events: TTFT and TPOT from the chunks' arrival
    timeout_s: float = 60.0  # per request, unless scenario.request_timeout_s is set
    check_usage: bool = True  # fail a request whose reported completion tokens differ
    health_path: str = "/health"  # GET this until 200 (load_s in server mode)
    server_command: str = ""  # server mode: a command to start, e.g. "vllm serve {checkpoint}
    # --port {port}"; "" = an endpoint that is already running
    ready_timeout_s: float = 900.0  # server mode: how long the server may take to be healthy
    extra_json: str = ""  # a JSON object merged into every request body (a server's own
    # parameters, e.g. '{"return_token_ids": true}' for vLLM without a tokenizer)
    api_key_env: str = ""  # an environment variable holding a bearer token (never the token
    # itself: config and rows are shared; the token stays in the job's environment)
    instances: int = 1  # instances behind the endpoint: the cell's price is this many times
    # the instance's (unless price_per_hour is given)
    # sampling: null leaves the server's default (as other load tools do)
    temperature: float | None = None
    top_p: float | None = None
    exact_length: bool = True  # ask for exactly the drawn output length (vLLM's min_tokens and
    # ignore_eos); false: max_tokens only, so the server may stop early (token_mismatches)
    metrics_url: str = ""  # the server's Prometheus metrics; "" = server mode's /metrics, an
    # external endpoint's none
    # api=kserve (KServe v2 / Triton): the input tensors (bench.engines.kserve)
    input_names: tuple[str, ...] = ()  # () = input_ids, attention_mask (text) | pixel_values
    input_datatype: str = ""  # "" = INT64 (token ids) | FP32 (pixels); INT32, FP16
    input_layout: str = "nchw"  # an image tensor's: nchw | nhwc
    # api=kserve: several models on one server, one drawn per request (bench.engines.targets)
    target_models: int = 0  # N models named by target_pattern; 0 = one, served_model
    target_pattern: str = "model-{i}"  # {i} = 0..N-1, {model} = served_model or model.name
    target_names: tuple[str, ...] = ()  # the models by name, instead of target_models
    target_distribution: str = "uniform"  # uniform | zipf
    target_skew: float = 1.0  # zipf's exponent: model i's share ~ 1 / (i + 1)^skew


def api_root(url: str) -> urllib.parse.SplitResult:
    """The server's root: a base URL given with the API's `/v1` (as OpenAI clients take it)
    names the same server as one without."""
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path.rstrip("/")
    return parsed._replace(path=path.removesuffix("/v1"))


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


class UsageMismatch(RuntimeError):
    """The server generated another number of tokens than asked for."""


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


BODY_READ = 1 << 16  # bytes a non-streamed body is read by, each read under the deadline


def check_extra_json(text: str) -> None:
    """engine.extra_json, where given, is a JSON object (merged into each request body)."""
    if not text:
        return
    try:
        extra = json.loads(text)
    except ValueError:
        extra = None
    if not isinstance(extra, dict):
        raise ConfigError("engine.extra_json", text, "must be a JSON object")


def check_sampling(options: Any) -> None:
    """temperature >= 0 and top_p in (0, 1], where set."""
    if options.temperature is not None and not (
        isinstance(options.temperature, (int, float)) and 0 <= options.temperature < math.inf
    ):
        raise ConfigError("engine.temperature", options.temperature, "must be a number >= 0")
    if options.top_p is not None and not (
        isinstance(options.top_p, (int, float)) and 0 < options.top_p <= 1
    ):
        raise ConfigError("engine.top_p", options.top_p, "must be a number in (0, 1]")


def check_instances(count: int) -> None:
    if count < 1:
        raise ConfigError("engine.instances", count, "must be an integer >= 1")


def check_durations(options: Any, keys: tuple[str, ...]) -> None:
    """These engine options are finite positive seconds (an infinite timeout hangs a cell)."""
    for key in keys:
        value = getattr(options, key)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"engine.{key}", value, "must be a finite number > 0")


def merged(body: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` laid over `body`; a nested object (e.g. TGI's "parameters") is merged key by
    key, so extra_json can add one parameter without restating the others."""
    out = dict(body)
    for key, value in extra.items():
        inner = out.get(key)
        out[key] = (
            merged(inner, value) if isinstance(inner, dict) and isinstance(value, dict) else value
        )
    return out


def endpoint_capability(image_note: str | None = None) -> Capability:
    """An endpoint's: any precision, device and TP degree (the server's business: labels
    here), a body of its own per request; image models too unless `image_note` says why
    not (an engine's own rules say which of its APIs carry images)."""
    tasks = {"encode", "generate", "seq2seq"}
    if image_note is None:
        tasks.add("classify_image")
    return Capability(
        ANY_PRECISION | MIXED_PRECISION | {"int8"},
        BOTH_DEVICES,
        max_tp=None,
        tasks=frozenset(tasks),
        task_notes=(("classify_image", image_note),) if image_note else (),
        varied_inputs=True,
    )


def server_limits_reason(cell: CellConfig) -> str | None:
    """The scenario's stand-in for a server's limits does not apply to a real server."""
    if cell.scenario.server_workers is not None or cell.scenario.max_waiting is not None:
        return (
            "scenario.server_workers and max_waiting model a server's limits for in-process "
            "engines; an endpoint has its own (request_timeout_s is the client's timeout)"
        )
    return None


def endpoint_reason(cell: CellConfig) -> str | None:
    """What no endpoint engine runs: the scenario's server limits (above), and the capacity
    scenario, which loads copies of the model into this process's memory until it is full: an
    endpoint's model lives in the server's memory, which the client cannot fill or measure."""
    if cell.scenario.name == "capacity":
        return (
            f"scenario=capacity loads model copies into local memory; engine {cell.engine.name} "
            "measures a remote endpoint (latency, ramp, open_loop or sla_search measure it)"
        )
    return server_limits_reason(cell)


class HttpEngine(Engine):
    name = "http"
    Options = HttpOptions
    capability = endpoint_capability()  # images through api=kserve only (unsupported_reason)
    remote: ClassVar[bool] = True

    @classmethod
    def validate(cls, options: HttpOptions) -> None:
        if options.api not in APIS:
            raise ConfigError("engine.api", options.api, "allowed: " + ", ".join(APIS))
        parsed = urllib.parse.urlsplit(options.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError("engine.url", options.url, "must be http://HOST[:PORT] or https://")
        metrics = urllib.parse.urlsplit(options.metrics_url)
        if options.metrics_url and (metrics.scheme not in ("http", "https") or metrics.username):
            raise ConfigError(
                "engine.metrics_url", options.metrics_url, "must be http(s)://HOST[:PORT]/PATH"
            )
        if parsed.username or parsed.password:  # rows and manifests are shared: never there
            shown = options.url.replace(parsed.netloc, parsed.netloc.rpartition("@")[2])
            raise ConfigError(
                "engine.url",
                shown + " (with user:password@)",
                "no credentials in the URL: give a token through engine.api_key_env=VARIABLE",
            )
        check_extra_json(options.extra_json)
        check_durations(options, ("timeout_s", "ready_timeout_s"))
        check_instances(options.instances)
        check_sampling(options)
        check_targets(options)
        kserve.check_options(options)

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        name = cell.engine.options.get("api_key_env", "")
        if name and not os.environ.get(name):
            return f"engine.api_key_env names {name}, which is not set where the cell runs"
        return None

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        reason = super().unsupported_reason(cell)
        if reason:
            return reason
        api = cell.engine.options.get("api", HttpOptions.api)
        generates = task_of(cell.model).generates
        if api == "kserve":
            return kserve.unsupported_reason(cell) or endpoint_reason(cell)
        if not task_of(cell.model).text:
            return "the OpenAI-compatible APIs carry text, not images: set engine.api=kserve"
        if generates and api == "embeddings":
            return "engine.api=embeddings returns vectors; a generation model needs completions"
        if not generates and api != "embeddings":
            return f"an encoder's request is an embedding: set engine.api=embeddings, not {api}"
        if api == "chat" and cell.batch_size != 1:
            return "engine.api=chat sends one conversation per request: set batch_size=1"
        return endpoint_reason(cell)

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self._local = threading.local()  # per client thread: its connection
        self.server: subprocess.Popen[bytes] | None = None
        self.server_exit: int | None = None
        self.url = api_root(self.options.url)
        self.timeout_s = cell.scenario.request_timeout_s or self.options.timeout_s
        if self.options.api_key_env:  # masked wherever an error or a log line quotes it
            secrets.register(os.environ.get(self.options.api_key_env))
        self.kserve = self.options.api == "kserve"
        self.draw: TargetDraw | None = None  # api=kserve with several models: one a request

    # -- the server (server mode) ----------------------------------------------------------
    def prepare(self) -> PrepareInfo:
        if "{checkpoint}" not in self.options.server_command:
            return PrepareInfo()
        from bench.engines.checkpoints import ensure_checkpoint

        got = ensure_checkpoint(self.cell.model, self.cell.models_dir, self.cell.seed)
        self.checkpoint = str(got.folder)
        return PrepareInfo(checkpoint=self.checkpoint, build_s=got.build_s)

    def _start_server(self) -> None:
        from bench.engines.ports import free_port

        port = free_port()
        fields = {
            "port": str(port),
            "checkpoint": getattr(self, "checkpoint", ""),
            "model": self.cell.model.name,
            "python": sys.executable,  # this cell's interpreter: its environment's packages
        }
        command = shlex.split(self.options.server_command.format(**fields))
        sys.stderr.flush()  # the server writes to the cell's stderr: its log
        # a group of its own in the cell's session: stopped with all its workers by one
        # signal, and found by the executor's sweep of the session if the cell never stops it
        self.server = start_group(command, stdout=sys.stderr.fileno(), stderr=subprocess.STDOUT)
        self.url = self.url._replace(netloc=f"127.0.0.1:{port}")

    def _wait_healthy(self, limit_s: float, any_answer: bool) -> None:
        """Poll health_path until it answers 200 (or, `any_answer`, anything but a server
        error: an endpoint without a health route still answers); blocking sleeps, nothing is
        measured meanwhile."""
        deadline = time.monotonic() + limit_s
        while True:
            if self.server is not None and self.server.poll() is not None:
                raise HttpError(
                    f"the server exited with code {self.server.returncode} before it was healthy "
                    "(its output is in the cell's log)"
                )
            try:
                status, _ = self._call("GET", self._health_path(), None, timeout=5.0)
                if status == 200 or (any_answer and status < 500):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HttpError(
                    f"{self._base()}{self._health_path()} not healthy after "
                    f"{limit_s:g} s (engine.ready_timeout_s)"
                )
            time.sleep(0.25)

    def _health_path(self) -> str:
        """health_path; api=kserve left at the OpenAI servers' /health asks the v2 route."""
        if self.kserve and self.options.health_path == HttpOptions.health_path:
            return kserve.HEALTH_PATH
        return self.options.health_path

    def load(self) -> LoadInfo:
        """Server mode: start it and wait until healthy (load_s = time to healthy). Else: the
        endpoint answers its health check (load_s = that round trip)."""
        if self.options.server_command:
            self._start_server()
            self._wait_healthy(self.options.ready_timeout_s, any_answer=False)
        else:  # already running: it answers now, or the cell fails soon
            self._wait_healthy(min(self.options.ready_timeout_s, REACH_TIMEOUT_S), any_answer=True)
        if self.kserve:  # a v2 model name is a repository's folder name, not a checkpoint path
            self.served = self.options.served_model or self.cell.model.name
            self.draw = target_draw(self.options, self.served, self.cell.seed)
            models = self.draw.names if self.draw is not None else (self.served,)
            self.kserve_facts = kserve.readiness(self._call, models)
        else:
            self.served = (
                self.options.served_model
                or self._listed_model()
                or (self.cell.model.checkpoint or self.cell.model.name)
            )
        return LoadInfo(device="remote", extra=self._facts())

    def _listed_model(self) -> str | None:
        """The one model the server lists at /v1/models (a vLLM server names it after its
        --model path), when it lists exactly one."""
        try:
            status, data = self._call("GET", "/v1/models", None, timeout=5.0)
            listed = json.loads(data).get("data") if status == 200 else None
        except (OSError, ValueError):
            return None
        ids = [m.get("id") for m in listed or [] if isinstance(m, dict)]
        return ids[0] if len(ids) == 1 and ids[0] else None

    def _facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "served_model": self.served,
            "endpoint": f"{self._base()} ({self.options.api})",
            "stream": self.options.stream,
            "client": "http.client, one keep-alive connection per client thread",
            "request_timeout_s": self.timeout_s,
        }
        if self.server is not None:
            facts["server_command"] = self.options.server_command
        if self.kserve:
            facts.update(self.kserve_facts, stream=False)
            if self.draw is not None:  # target_requests names them (describe)
                del facts["served_model"]
                facts.update(self.draw.facts())
        return facts

    def stop_server(self) -> int | None:
        """SIGTERM the server's process group, SIGKILL after a grace period; its exit code.
        Forgotten only once stopped: a stop cut short (SIGTERM to the cell) is done again by
        close()."""
        if self.server is not None:
            self.server_exit = stop_group(self.server, STOP_GRACE_S)
            self.server = None
        return self.server_exit

    def metrics_url(self) -> str | None:
        if self.options.metrics_url:
            return self.options.metrics_url
        return f"{self._base()}/metrics" if self.options.server_command else None

    def describe(self) -> dict[str, Any]:
        """After measuring: a server this cell started is stopped here, so the row can say how
        it ended (the measurement is over; close() stops it on any other path)."""
        facts: dict[str, Any] = {}
        if self.options.server_command:
            facts["server_exit_code"] = self.stop_server()
        if self.draw is not None:  # the requests each model got, known only now
            facts["engine_info"] = {"target_requests": self.draw.counts()}
        return facts

    def close(self) -> None:
        for connection in getattr(self, "_connections", []):
            connection.close()
        self.stop_server()

    # -- requests --------------------------------------------------------------------------
    def _base(self) -> str:
        return f"{self.url.scheme}://{self.url.netloc}{self.url.path.rstrip('/')}"

    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.options.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.options.api_key_env]}"
        return headers

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            kind = OneWriteHTTPSConnection if self.url.scheme == "https" else OneWriteHTTPConnection
            connection = self._local.connection = kind(self.url.netloc, timeout=timeout)
            connection.connect()
            # a request goes out at once, not held back for an ACK (Nagle)
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.__dict__.setdefault("_connections", []).append(connection)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> tuple[int, bytes]:
        """One non-streaming call: (status, body); a broken connection is reopened next time."""
        connection = self._connection(timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            kind = {"Content-Type": "application/json"} if payload is not None else {}
            headers = self._headers(**kind)
            connection.request(method, self.url.path.rstrip("/") + path, payload, headers)
            response = connection.getresponse()
            return response.status, response.read()
        except Exception:
            self._drop_connection()
            raise

    def make_batch(self) -> bytes:
        """A body of the model's seq_len random prompts (seeded), asking new_tokens; an image
        model's pixel tensor (api=kserve)."""
        model = self.cell.model
        if self.kserve and not task_of(model).text:
            return self._kserve_body(None)
        prompts = tuple(tuple(p) for p in token_prompts(self.cell))
        return self.batch_for(Inputs(prompts, (model.new_tokens,) * len(prompts)))

    def batch_for(self, inputs: Inputs) -> bytes:
        """The request body carrying the workload's inputs, encoded once, outside the timed
        bracket: token ids for completions and embeddings (the texts where the workload has
        them), a conversation of text for chat."""
        if self.kserve:  # token ids always: a v2 model takes tensors, not text
            return self._kserve_body(inputs)
        prompts: list[Any] = list(inputs.texts or inputs.prompts)  # JSON writes tuples as lists
        if self.options.api == "embeddings":
            return json.dumps({**self._body_base(0), "input": prompts}).encode()
        body = dict(self._body_base(max(inputs.output_lens)))
        if self.options.api == "chat":  # one conversation per request (batch_size 1)
            body["messages"] = chat_messages(inputs)
        else:
            body["prompt"] = prompts
        return json.dumps(body).encode()

    def _kserve_body(self, inputs: Inputs | None) -> bytes:
        """A v2 infer body: the inputs' token ids and mask, or (None) the image tensor."""
        text = task_of(self.cell.model).text
        names = kserve.input_names(self.options.input_names, text)
        datatype = kserve.datatype_of(self.options.input_datatype, text)
        if inputs is None:
            body = kserve.image_body(self.cell, names[0], datatype, self.options.input_layout)
        else:
            body = kserve.text_body(inputs.prompts, names, datatype)
        extra = json.loads(self.options.extra_json) if self.options.extra_json else {}
        return json.dumps(merged(body, extra)).encode()

    def _body_base(self, new_tokens: int) -> dict[str, Any]:
        """A body's fields but its inputs, for an output length (made once per length)."""
        bases = self.__dict__.setdefault("_bases", {})
        served = getattr(self, "served", None) or self.options.served_model or self.cell.model.name
        if (served, new_tokens) not in bases:
            extra = json.loads(self.options.extra_json) if self.options.extra_json else {}
            body = {"model": served}
            if self.options.api != "embeddings":
                body.update(self.generation(new_tokens))
            bases[served, new_tokens] = merged(body, extra)
        return bases[served, new_tokens]

    def generation(self, new_tokens: int) -> dict[str, Any]:
        """The generation fields of a body, from the sampling options."""
        body = openai_generation(new_tokens, self.options.stream, self.options.exact_length)
        if self.options.temperature is not None:
            body["temperature"] = self.options.temperature
        if self.options.top_p is not None:
            body["top_p"] = self.options.top_p
        return body

    def _path(self) -> str:
        if self.kserve:  # the model, drawn per request where there are several, is in the path
            return kserve.infer_path(self.draw.next() if self.draw is not None else self.served)
        return {
            "completions": "/v1/completions",
            "chat": "/v1/chat/completions",
            "embeddings": "/v1/embeddings",
        }[self.options.api]

    def _post(
        self, body: bytes, stream: bool, deadline: Deadline
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = self._connection(self.timeout_s)
        kind = {"Content-Type": "application/json"}
        if stream:
            kind["Accept"] = "text/event-stream"
        deadline.arm(connection)
        connection.request("POST", self.url.path + self._path(), body, self._headers(**kind))
        return connection, connection.getresponse()

    def infer(self, batch: bytes) -> Any:
        deadline = Deadline(self.timeout_s)
        try:
            connection, response = self._post(batch, stream=False, deadline=deadline)
            status, data = response.status, deadline.read_all(connection, response)
        except TimeoutError as exc:
            self._drop_connection()
            raise RequestTimeout(f"no complete answer within {self.timeout_s:g} s") from exc
        except Exception:
            self._drop_connection()
            raise
        if status != 200:
            raise HttpError(f"HTTP {status}: {data[:200]!r}")
        if self.kserve:
            try:
                return kserve.checked_answer(data, self.cell.batch_size)
            except ValueError as exc:
                raise HttpError(f"not a v2 inference answer: {exc}") from exc
        answer = json.loads(data)
        got = len(answer.get("data") or answer.get("choices") or [])
        if self.options.api == "embeddings":
            asked = len(json.loads(batch)["input"])
            if got != asked:
                raise HttpError(f"{got} embeddings for {asked} inputs")
        return answer

    def generate(self, batch: bytes, new_tokens: int) -> Any:
        return self.generate_timed(batch, new_tokens)

    def generate_timed(self, batch: bytes, new_tokens: int) -> Reply:
        """Stream: the arrival time of each token chunk of the first prompt (index 0), the
        tokens counted, the first prompt's answer."""
        prompts = self._prompt_count(batch)
        if not self.options.stream:
            answer = self.infer(batch)
            usage = answer.get("usage") or {}
            reply = Reply(
                output_tokens=usage.get("completion_tokens"),
                token_source="usage" if usage.get("completion_tokens") is not None else "",
                input_tokens=usage.get("prompt_tokens"),
                answer=_answer_text(answer),
            )
            self._check_count(reply, new_tokens * prompts, None)
            return reply
        deadline = Deadline(self.timeout_s)
        try:
            connection, response = self._post(batch, stream=True, deadline=deadline)
            if response.status != 200:
                data = deadline.read_all(connection, response)
                raise HttpError(f"HTTP {response.status}: {data[:200]!r}")
            stream = self._read_events(connection, response, deadline)
        except TimeoutError as exc:
            self._drop_connection()
            raise RequestTimeout(f"no complete answer within {self.timeout_s:g} s") from exc
        except Exception:
            self._drop_connection()
            raise
        usage = stream.usage or {}
        reported = usage.get("completion_tokens")
        reply = Reply(
            token_times=stream.times,
            output_tokens=reported if reported is not None else stream.counted,
            token_source="usage" if reported is not None else "stream",
            input_tokens=usage.get("prompt_tokens"),
            answer=tuple(stream.ids) if stream.ids else "".join(stream.text),
        )
        self._check_count(reply, new_tokens * prompts, stream)
        return reply

    def _prompt_count(self, batch: bytes) -> int:
        """Prompts in a body: the batch's sequences (chat: one conversation)."""
        return 1 if self.options.api == "chat" else self.cell.batch_size

    def _read_events(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        deadline: Deadline,
    ) -> Streamed:
        got = Streamed()
        while True:
            deadline.arm(connection)
            if not (line := response.readline()):
                break
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            got.usage = event.get("usage") or got.usage
            for choice in event.get("choices") or ():
                got.add(choice)
        deadline.read_all(connection, response)  # the rest, so the connection can be reused
        if not got.times:
            raise HttpError("the stream carried no token")
        return got

    def _check_count(self, reply: Reply, asked: int, stream: Streamed | None) -> None:
        """A reply whose token count differs from what was asked fails the request (with
        check_usage; else the row counts it in token_mismatches), and so does usage that
        claims another count than the stream carried: its token ids, or its chunks (one token
        each, as vLLM, SGLang and TGI stream by default; a server that packs several per chunk
        times its tokens by chunk too, so its TPOT would be wrong as well)."""
        if not self.options.check_usage:
            return
        got = reply.output_tokens
        if got is not None and got != asked:
            raise UsageMismatch(
                f"the server generated {got} tokens ({reply.token_source}), {asked} were asked "
                "for (engine.check_usage=false counts them in token_mismatches instead)"
            )
        if stream is None or got is None or stream.counted == got:
            return
        if stream.exact:
            raise UsageMismatch(f"usage says {got} tokens, the stream carried {stream.counted}")
        raise UsageMismatch(
            f"usage says {got} tokens, the stream carried {stream.counted} chunks of text (one "
            "token each expected; a server that packs several per chunk needs "
            "engine.check_usage=false, and its TPOT is per chunk)"
        )


class Streamed:
    """What a stream carried: the first prompt's token times (a chunk's arrival once per token
    id it carries, else once), its answer (text pieces or token ids), every prompt's tokens
    counted (a chunk's token ids, else one per chunk), usage."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.text: list[str] = []
        self.ids: list[int] = []
        self.counted = 0
        self.exact = True  # every chunk carried its token ids: `counted` is exact
        self.usage: dict[str, Any] | None = None

    def add(self, choice: dict[str, Any]) -> None:
        if not _has_token(choice):
            return
        ids = choice.get("token_ids")
        if ids:
            self.counted += len(ids)
        else:
            self.counted += 1
            self.exact = False
        if choice.get("index", 0) != 0:
            return
        # a chunk of several token ids: each arrived now (TPOT divides by tokens, not chunks)
        stamp = time.perf_counter_ns()
        self.times.extend([stamp] * len(ids) if ids else [stamp])
        if ids:
            self.ids.extend(ids)
        piece = choice.get("text")
        if piece is None:
            piece = (choice.get("delta") or {}).get("content")
        if piece:
            self.text.append(piece)


def chat_messages(inputs: Inputs) -> list[dict[str, str]]:
    """A chat request's messages: the conversation so far (user turns' ids as words, the
    server's answers as it gave them), else one user message of the first prompt."""
    if inputs.turns:
        return [
            {"role": role, "content": content if isinstance(content, str) else words_for(content)}
            for role, content in inputs.turns
        ]
    text = inputs.texts[0] if inputs.texts else words_for(inputs.prompts[0])
    return [{"role": "user", "content": text}]


def _answer_text(answer: dict[str, Any]) -> str | tuple[int, ...] | None:
    choices = answer.get("choices") or [{}]
    first = choices[0]
    if first.get("token_ids"):
        return tuple(first["token_ids"])
    return first.get("text") or (first.get("message") or {}).get("content")


def openai_generation(new_tokens: int, stream: bool, exact: bool = True) -> dict[str, Any]:
    """An OpenAI-style request's generation fields: new_tokens (`exact`: no fewer, EOS or
    not, as vLLM and SGLang take min_tokens and ignore_eos) and with a stream its final usage
    chunk. Sampling is the server's default unless the caller adds it."""
    body: dict[str, Any] = {"max_tokens": new_tokens, "stream": stream}
    if exact:
        body.update(min_tokens=new_tokens, ignore_eos=True)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def first_prompt_token(chunk: dict[str, Any]) -> bool:
    """An OpenAI stream chunk carrying a token of the first prompt (choice index 0)."""
    return any(c.get("index", 0) == 0 and _has_token(c) for c in chunk.get("choices") or [])


def _has_token(choice: dict[str, Any]) -> bool:
    """A completion chunk's text or token ids (a server without a tokenizer sends ids alone),
    or a chat chunk's content (role-only deltas carry none)."""
    if choice.get("text") or choice.get("token_ids"):
        return True
    delta = choice.get("delta") or {}
    return bool(delta.get("content"))
