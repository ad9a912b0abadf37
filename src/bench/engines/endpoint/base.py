"""What the endpoint engines (http, sagemaker) share: an endpoint bench did not load, measured
from the client's side.

- The options both take (EndpointOptions): streaming, the request timeout (the scenario's
  `request_timeout_s` wins), the check of the tokens a reply counts, a JSON object merged into
  every body, the instances the price counts, and several target models drawn per request
  (bench.engines.endpoint.targets).
- The rules both follow: any precision, device and TP degree (the server's business: labels
  here), a body of its own per request, no capacity scenario and no stand-in server limits.
- The request bookkeeping both do: the draw of each request's target and its count per
  target after measuring, the usage check, generate() as the timed generation.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.engines.base import ANY_PRECISION, BOTH_DEVICES, MIXED_PRECISION, Capability, Engine
from bench.engines.endpoint.errors import UsageMismatch
from bench.engines.endpoint.targets import TargetDraw, check_targets


@dataclass(frozen=True)
class EndpointOptions:
    """The options every endpoint engine takes; an engine's own Options add to them (their
    defaults are conf/engine/NAME.yaml's)."""

    stream: bool = True  # a streamed answer: TTFT and TPOT from the chunks' arrival
    timeout_s: float = 60.0  # per request, unless scenario.request_timeout_s is set
    check_usage: bool = True  # fail a request whose reported generated tokens differ
    extra_json: str = ""  # a JSON object merged into every request body (nested objects merge)
    instances: int = 1  # instances behind the endpoint: the cell's price is this many times
    # the instance's (unless price_per_hour is given)
    # several models behind the endpoint, one drawn per request (bench.engines.endpoint.targets)
    target_models: int = 0  # N models named by target_pattern; 0 = one model
    target_pattern: str = "model-{i}"  # {i} = 0..N-1, {model} = the one model's name
    target_names: tuple[str, ...] = ()  # the models by name, instead of target_models
    target_distribution: str = "uniform"  # uniform | zipf
    target_skew: float = 1.0  # zipf's exponent: model i's share ~ 1 / (i + 1)^skew


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


class EndpointEngine(Engine):
    """An endpoint engine: its Options extend EndpointOptions; it says what its protocol
    cannot send (`request_reason`), makes the bodies and sends them."""

    Options: ClassVar[type] = EndpointOptions
    capability = endpoint_capability()
    remote: ClassVar[bool] = True
    # the option that names one fixed target, which a list of targets replaces ("": none)
    single_target: ClassVar[str] = ""
    durations: ClassVar[tuple[str, ...]] = ("timeout_s",)  # options that are seconds

    @classmethod
    def validate(cls, options: Any) -> None:
        check_extra_json(options.extra_json)
        check_durations(options, cls.durations)
        check_instances(options.instances)
        check_targets(options, single=cls.single_target)

    @classmethod
    def unsupported_reason(cls, cell: CellConfig) -> str | None:
        return (
            super().unsupported_reason(cell)
            or cls.request_reason(cell, cls.options_of(cell.engine.options))
            or endpoint_reason(cell)
        )

    @classmethod
    def request_reason(cls, cell: CellConfig, options: Any) -> str | None:
        """Why the engine's protocol cannot carry `cell`'s requests with these options."""
        return None

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self.timeout_s = cell.scenario.request_timeout_s or self.options.timeout_s
        # read once: every body merges it (outside the timed bracket)
        self.extra: dict[str, Any] = (
            json.loads(self.options.extra_json) if self.options.extra_json else {}
        )
        self.draw: TargetDraw | None = None  # several targets: the one of each request

    def request_facts(self, endpoint: str, client: str) -> dict[str, Any]:
        """engine_info's facts about the requests: where they go and how they are sent."""
        return {
            "endpoint": endpoint,
            "stream": self.options.stream,
            "client": client,
            "request_timeout_s": self.timeout_s,
        }

    def describe(self) -> dict[str, Any]:
        """After measuring: the requests each target got, into engine_info."""
        if self.draw is None:
            return {}
        return {"engine_info": {"target_requests": self.draw.counts()}}

    def check_count(self, got: int | None, asked: int, source: str) -> None:
        """A reply whose token count differs from what was asked fails the request (with
        check_usage; else the row counts it in token_mismatches): an endpoint that stops
        early does not pass for fast."""
        if self.options.check_usage and got is not None and got != asked:
            raise UsageMismatch(
                f"the endpoint generated {got} tokens ({source}), {asked} were asked for "
                "(engine.check_usage=false counts them in token_mismatches instead)"
            )

    def generate(self, batch: bytes, new_tokens: int) -> Any:
        return self.generate_timed(batch, new_tokens)
