"""An endpoint bench did not load, over HTTP: the OpenAI-compatible APIs (`/v1/completions`,
`/v1/chat/completions`, `/v1/embeddings`; bench.engines.endpoint.openai) or KServe v2 /
Triton (`api=kserve`; bench.engines.endpoint.kserve), measured from the client's side as the
seeds' endpoint studies were.

- A request is one HTTP call carrying what the cell's workload drew for it
  (bench.measure.workloads: a distinct prompt per request by default), its body encoded
  before the timed bracket. A base URL may end in `/v1` or not.
- Streaming (server-sent events, the default) stamps each chunk of the first prompt as it
  arrives: TTFT and TPOT are the client's, defined as for every engine (send -> first token;
  the gaps between tokens). A count of output tokens other than the one asked fails the
  request (`check_usage`; else it is counted in token_mismatches): a server that stops early
  does not pass for fast.
- Client threads are the scenario's `threads`, each with its own keep-alive connection
  (bench.engines.endpoint.pool).
- A request that gets an HTTP error, breaks off or passes its timeout (the scenario's
  `request_timeout_s`, else `timeout_s`, from send to the last byte: each read waits only
  for the time left) is a failed request: counted in the row's `errors` and `failed_share`
  and per ramp stage, flagged in `percentile_flags`, left out of the latency figures, so a
  ramp finds the first failure.
- Server mode (`server_command`): the cell starts the server itself
  (bench.engines.endpoint.server; the checkpoint is built from config like every engine's),
  polls `health_path` until it answers 200, and `load_s` is that time to healthy. After
  measuring it stops the server and the row records its exit code.

The price is that of the instances behind the endpoint: the cell's `instance` (and
`price_per_hour=` when they are not in the catalog). Precision, device and TP degree are the
server's business: they are labels here, not settings.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import bench.engines.endpoint.kserve as kserve
import bench.engines.endpoint.openai as openai
from bench.config import secrets
from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.config.tasks import task_of, token_prompts
from bench.engines.base import Inputs, LoadInfo, PrepareInfo, Reply
from bench.engines.endpoint.base import EndpointEngine, EndpointOptions, merged
from bench.engines.endpoint.errors import HttpError
from bench.engines.endpoint.pool import ConnectionPool, Deadline, RequestTimeout
from bench.engines.endpoint.server import LocalServer
from bench.engines.endpoint.targets import target_draw

APIS = ("completions", "chat", "embeddings", "kserve")
REACH_TIMEOUT_S = 10.0  # how long an endpoint that should already run may take to answer
HEALTH_CALL_S = 5.0  # one health check's round trip


@dataclass(frozen=True)
class HttpOptions(EndpointOptions):
    url: str = "http://127.0.0.1:8000"  # the endpoint's base URL (server mode: its port is set)
    api: str = "completions"  # completions | chat | embeddings | kserve
    served_model: str = ""  # the request's "model" field; "" = the one model the server
    # lists at /v1/models, else model.checkpoint or model.name
    health_path: str = "/health"  # GET this until 200 (load_s in server mode)
    server_command: str = ""  # server mode: a command to start, e.g. "vllm serve {checkpoint}
    # --port {port}"; "" = an endpoint that is already running
    ready_timeout_s: float = 900.0  # server mode: how long the server may take to be healthy
    api_key_env: str = ""  # an environment variable holding a bearer token (never the token
    # itself: config and rows are shared; the token stays in the job's environment)
    # sampling: null leaves the server's default (as other load tools do)
    temperature: float | None = None
    top_p: float | None = None
    exact_length: bool = True  # ask for exactly the drawn output length (vLLM's min_tokens and
    # ignore_eos); false: max_tokens only, so the server may stop early (token_mismatches)
    metrics_url: str = ""  # the server's Prometheus metrics; "" = server mode's /metrics, an
    # external endpoint's none
    # api=kserve (KServe v2 / Triton): the input tensors (bench.engines.endpoint.kserve)
    input_names: tuple[str, ...] = ()  # () = input_ids, attention_mask (text) | pixel_values
    input_datatype: str = ""  # "" = INT64 (token ids) | FP32 (pixels); INT32, FP16
    input_layout: str = "nchw"  # an image tensor's: nchw | nhwc
    # api=kserve with several models on one server: {model} = served_model or model.name
    target_pattern: str = "model-{i}"


def api_root(url: str) -> urllib.parse.SplitResult:
    """The server's root: a base URL given with the API's `/v1` (as OpenAI clients take it)
    names the same server as one without."""
    parsed = urllib.parse.urlsplit(url)
    path = parsed.path.rstrip("/")
    return parsed._replace(path=path.removesuffix("/v1"))


class HttpEngine(EndpointEngine):
    name = "http"
    Options = HttpOptions
    durations = ("timeout_s", "ready_timeout_s")

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
        super().validate(options)
        openai.check_sampling(options)
        kserve.check_options(options)

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        name = cls.options_of(cell.engine.options).api_key_env
        if name and not os.environ.get(name):
            return f"engine.api_key_env names {name}, which is not set where the cell runs"
        return None

    @classmethod
    def request_reason(cls, cell: CellConfig, options: HttpOptions) -> str | None:
        """Images go through api=kserve only; the OpenAI APIs each carry one kind of model."""
        api = options.api
        generates = task_of(cell.model).generates
        if api == "kserve":
            return kserve.unsupported_reason(cell, options)
        if not task_of(cell.model).text:
            return "the OpenAI-compatible APIs carry text, not images: set engine.api=kserve"
        if generates and api == "embeddings":
            return "engine.api=embeddings returns vectors; a generation model needs completions"
        if not generates and api != "embeddings":
            return f"an encoder's request is an embedding: set engine.api=embeddings, not {api}"
        if api == "chat" and cell.batch_size != 1:
            return "engine.api=chat sends one conversation per request: set batch_size=1"
        return None

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self.pool = ConnectionPool(api_root(self.options.url))
        command = self.options.server_command
        self.server: LocalServer | None = LocalServer(command) if command else None
        if self.options.api_key_env:  # masked wherever an error or a log line quotes it
            secrets.register(os.environ.get(self.options.api_key_env))
        self.kserve = self.options.api == "kserve"

    # -- the server (server mode) ----------------------------------------------------------
    def prepare(self) -> PrepareInfo:
        if "{checkpoint}" not in self.options.server_command:
            return PrepareInfo()
        from bench.engines.checkpoints import ensure_checkpoint

        got = ensure_checkpoint(self.cell.model, self.cell.models_dir, self.cell.seed)
        self.checkpoint = str(got.folder)
        return PrepareInfo(checkpoint=self.checkpoint, build_s=got.build_s)

    def _wait_healthy(self, limit_s: float, any_answer: bool) -> None:
        """Poll health_path until it answers 200 (or, `any_answer`, anything but a server
        error: an endpoint without a health route still answers); blocking sleeps, nothing is
        measured meanwhile."""
        deadline = time.monotonic() + limit_s
        while True:
            if self.server is not None:
                self.server.fail_if_exited()
            try:
                status, _ = self._call("GET", self._health_path(), None, timeout=HEALTH_CALL_S)
                if status == 200 or (any_answer and status < 500):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise HttpError(
                    f"{self.pool.base()}{self._health_path()} not healthy after "
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
        if self.server is not None:
            port = self.server.start(getattr(self, "checkpoint", ""), self.cell.model.name)
            self.pool.url = self.pool.url._replace(netloc=f"127.0.0.1:{port}")
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
                or openai.listed_model(self._call)
                or (self.cell.model.checkpoint or self.cell.model.name)
            )
        return LoadInfo(device="remote", extra=self._facts())

    def _facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "served_model": self.served,
            **self.request_facts(
                f"{self.pool.base()} ({self.options.api})",
                "http.client, one keep-alive connection per client thread",
            ),
        }
        if self.server is not None:
            facts["server_command"] = self.options.server_command
        if self.kserve:
            facts.update(self.kserve_facts, stream=False)
            if self.draw is not None:  # target_requests names them (describe)
                del facts["served_model"]
                facts.update(self.draw.facts())
        return facts

    def metrics_url(self) -> str | None:
        if self.options.metrics_url:
            return self.options.metrics_url
        return f"{self.pool.base()}/metrics" if self.server is not None else None

    def describe(self) -> dict[str, Any]:
        """After measuring: a server this cell started is stopped here, so the row can say how
        it ended (the measurement is over; close() stops it on any other path); the requests
        each model got, known only now."""
        facts: dict[str, Any] = {}
        if self.server is not None:
            facts["server_exit_code"] = self.server.stop()
        facts.update(super().describe())
        return facts

    def close(self) -> None:
        self.pool.close()
        if self.server is not None:
            self.server.stop()

    # -- requests --------------------------------------------------------------------------
    def _headers(self, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.options.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.options.api_key_env]}"
        return headers

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> tuple[int, bytes]:
        """One non-streaming call: (status, body); a broken connection is reopened next time."""
        payload = json.dumps(body).encode() if body is not None else None
        kind = {"Content-Type": "application/json"} if payload is not None else {}
        return self.pool.call(method, path, payload, self._headers(**kind), timeout)

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
        new_tokens = 0 if self.options.api == "embeddings" else max(inputs.output_lens)
        return openai.request_body(self.options.api, self._body_base(new_tokens), inputs)

    def _kserve_body(self, inputs: Inputs | None) -> bytes:
        """A v2 infer body: the inputs' token ids and mask, or (None) the image tensor."""
        text = task_of(self.cell.model).text
        names = kserve.input_names(self.options.input_names, text)
        datatype = kserve.datatype_of(self.options.input_datatype, text)
        if inputs is None:
            body = kserve.image_body(self.cell, names[0], datatype, self.options.input_layout)
        else:
            body = kserve.text_body(inputs.prompts, names, datatype)
        return json.dumps(merged(body, self.extra)).encode()

    def _body_base(self, new_tokens: int) -> dict[str, Any]:
        """A body's fields but its inputs, for an output length (made once per length)."""
        bases = self.__dict__.setdefault("_bases", {})
        served = getattr(self, "served", None) or self.options.served_model or self.cell.model.name
        if (served, new_tokens) not in bases:
            body = {"model": served}
            if self.options.api != "embeddings":
                body.update(openai.sampled_generation(self.options, new_tokens))
            bases[served, new_tokens] = merged(body, self.extra)
        return bases[served, new_tokens]

    def _path(self) -> str:
        if self.kserve:  # the model, drawn per request where there are several, is in the path
            return kserve.infer_path(self.draw.next() if self.draw is not None else self.served)
        return openai.PATHS[self.options.api]

    def _post(
        self, body: bytes, stream: bool, deadline: Deadline
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        connection = self.pool.connection(self.timeout_s)
        kind = {"Content-Type": "application/json"}
        if stream:
            kind["Accept"] = "text/event-stream"
        deadline.arm(connection)
        connection.request("POST", self.pool.url.path + self._path(), body, self._headers(**kind))
        return connection, connection.getresponse()

    def infer(self, batch: bytes) -> Any:
        deadline = Deadline(self.timeout_s)
        try:
            connection, response = self._post(batch, stream=False, deadline=deadline)
            status, data = response.status, deadline.read_all(connection, response)
        except TimeoutError as exc:
            self.pool.drop()
            raise RequestTimeout(f"no complete answer within {self.timeout_s:g} s") from exc
        except Exception:
            self.pool.drop()
            raise
        if status != 200:
            raise HttpError(f"HTTP {status}: {data[:200]!r}")
        if self.kserve:
            try:
                return kserve.checked_answer(data, self.cell.batch_size)
            except ValueError as exc:
                raise HttpError(f"not a v2 inference answer: {exc}") from exc
        return openai.checked_answer(data, self.options.api, batch)

    def generate_timed(self, batch: bytes, new_tokens: int) -> Reply:
        """Stream: the arrival time of each token chunk of the first prompt (index 0), the
        tokens counted, the first prompt's answer."""
        prompts = self._prompt_count(batch)
        if not self.options.stream:
            reply = openai.answered_reply(self.infer(batch))
            self.check_count(reply.output_tokens, new_tokens * prompts, reply.token_source)
            return reply
        deadline = Deadline(self.timeout_s)
        try:
            connection, response = self._post(batch, stream=True, deadline=deadline)
            if response.status != 200:
                data = deadline.read_all(connection, response)
                raise HttpError(f"HTTP {response.status}: {data[:200]!r}")
            stream = openai.read_events(connection, response, deadline)
        except TimeoutError as exc:
            self.pool.drop()
            raise RequestTimeout(f"no complete answer within {self.timeout_s:g} s") from exc
        except Exception:
            self.pool.drop()
            raise
        reply = openai.streamed_reply(stream)
        self.check_count(reply.output_tokens, new_tokens * prompts, reply.token_source)
        if self.options.check_usage:
            openai.check_streamed_count(stream, reply.output_tokens)
        return reply

    def _prompt_count(self, batch: bytes) -> int:
        """Prompts in a body: the batch's sequences (chat: one conversation)."""
        return 1 if self.options.api == "chat" else self.cell.batch_size
