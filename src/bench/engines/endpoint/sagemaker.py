"""A SageMaker real-time endpoint (seeds 001-003 serve their models this way: DJLServing/LMI,
TGI, multi-model endpoints), measured from the client's side through the SageMaker runtime
API with boto3: `invoke_endpoint`, or `invoke_endpoint_with_response_stream` for TTFT/TPOT.

- Requests are signed with SigV4 by boto3 from the standard credential chain (environment,
  profile, role); region from `region`, else the chain. Nothing of the credentials is kept in
  config, rows or logs. `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` (boto3's own variable) points
  the client at another endpoint, e.g. a VPC endpoint or an emulator.
- The body follows the container's schema (`schema`): `tgi` is TGI's and LMI's
  `{"inputs": ..., "parameters": {"max_new_tokens", "details", ...}}` (its streamed lines
  carry `token` objects, the last one `details.generated_tokens`); `chat` is the OpenAI
  messages schema LMI and vLLM containers also accept; an encoder model sends
  `{"inputs": [texts]}` and takes any 200 answer. Prompts are text of seq_len words (the
  endpoint tokenizes); `extra_json` adds a container's own keys (nested objects merge).
- Streaming stamps each line that carries a token as it arrives (lines may be split across
  PayloadParts: they are joined first). The generated-token count the endpoint reports is
  checked against new_tokens (`check_usage`): TGI has no `min_new_tokens`, so an endpoint
  that stops at EOS fails its requests instead of passing for fast; set
  `extra_json='{"parameters": {"min_new_tokens": N}}'` where the container has it.
- No retries (botocore's are turned off): a throttled, failed (ModelError) or timed-out
  request is a failed request, counted in the row's errors and per ramp stage.
- load: `DescribeEndpoint` (the control plane; where the role may not call it the row says
  so) must say InService; load_s is that call's time. The endpoint's variants and instance
  counts go into engine_info: the row's price is the cell's instance (pricing=sagemaker, or
  price_per_hour=) times `instances`, and a DescribeEndpoint count that differs is noted.
- `target_model` sends TargetModel (multi-model endpoints, seed 003); `target_models` N (named
  by `target_pattern`) or `target_names` draws one per request, uniform or Zipf-skewed,
  seeded (bench.engines.endpoint.targets), and the row's engine_info counts the requests each
  got.
  InvokeEndpointWithResponseStream takes no TargetModel: a multi-model cell that generates
  sets stream=false.
- An image model (task classify_image) sends one picture per request, encoded by Pillow
  (`image_format` png | jpeg) from the cell's seeded pixels, as `content_type` (image/png,
  image/jpeg, or application/x-image as SageMaker's built-in image algorithms take it).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from bench.config.checks import ConfigError
from bench.config.schema import CellConfig
from bench.config.tasks import task_of, text_prompt
from bench.engines.base import Inputs, LoadInfo, Reply, words_for
from bench.engines.endpoint.base import EndpointEngine, EndpointOptions, merged
from bench.engines.endpoint.errors import HttpError
from bench.engines.endpoint.images import CONTENT_TYPES, IMAGE_FORMATS, encoded_image
from bench.engines.endpoint.openai import first_prompt_token, openai_generation
from bench.engines.endpoint.targets import target_draw

SCHEMAS = ("tgi", "chat")
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SageMakerOptions(EndpointOptions):
    endpoint_name: str = ""  # the SageMaker endpoint's name (required)
    region: str = ""  # "" = the standard chain (AWS_REGION, the profile's region)
    schema: str = "tgi"  # the container's request schema: tgi (TGI/LMI inputs+parameters)
    # | chat (OpenAI messages); encoder models send {"inputs": [texts]} either way
    target_model: str = ""  # TargetModel: the model of a multi-model endpoint
    describe: bool = True  # DescribeEndpoint at load: InService, variants, instance counts
    # (the price counts `instances`; DescribeEndpoint's count is checked against it)
    # a multi-model endpoint's TargetModels: {model} = the cell's model name
    target_pattern: str = "model-{i}.tar.gz"
    # image models (classify_image): one encoded picture per request
    image_format: str = "png"  # png | jpeg (Pillow, from the cell's seeded pixels)
    content_type: str = ""  # "" = image/png or image/jpeg; application/x-image for png


class SageMakerEngine(EndpointEngine):
    name = "sagemaker"
    Options = SageMakerOptions
    single_target = "target_model"

    @classmethod
    def validate(cls, options: SageMakerOptions) -> None:
        if not options.endpoint_name:
            raise ConfigError("engine.endpoint_name", "", "required: the endpoint's name")
        if options.schema not in SCHEMAS:
            raise ConfigError("engine.schema", options.schema, "allowed: " + ", ".join(SCHEMAS))
        super().validate(options)
        if options.image_format not in IMAGE_FORMATS:
            raise ConfigError(
                "engine.image_format", options.image_format, "allowed: " + ", ".join(IMAGE_FORMATS)
            )
        sent_as = CONTENT_TYPES[options.image_format]
        if options.content_type and options.content_type not in sent_as:
            raise ConfigError(
                "engine.content_type",
                options.content_type,
                f"an image_format={options.image_format} body goes as " + " or ".join(sent_as),
            )

    @classmethod
    def host_reason(cls, cell: CellConfig) -> str | None:
        try:
            import boto3  # noqa: F401
        except ImportError:
            return "engine sagemaker needs boto3 (pip install boto3)"
        if not task_of(cell.model).text:
            try:
                import PIL  # noqa: F401
            except ImportError:
                return "engine sagemaker encodes images with Pillow (pip install pillow)"
        return None

    @classmethod
    def request_reason(cls, cell: CellConfig, options: SageMakerOptions) -> str | None:
        """One streamed prompt per request, no TargetModel on a stream, one picture a body."""
        schema, stream = options.schema, options.stream
        task = task_of(cell.model)
        if task.generates and cell.batch_size != 1 and (schema == "chat" or stream):
            return (
                f"engine.schema={schema} streams one prompt per request: set batch_size=1 "
                "(or engine.stream=false for a batch in TGI's inputs list)"
            )
        targeted = bool(options.target_model or options.target_models or options.target_names)
        if task.generates and stream and targeted:
            return (
                "InvokeEndpointWithResponseStream takes no TargetModel (a multi-model endpoint "
                "does not stream): set engine.stream=false"
            )
        if not task.text and cell.batch_size != 1:
            return "an image body carries one picture per request: set batch_size=1"
        return None

    def __init__(self, cell: CellConfig) -> None:
        super().__init__(cell)
        self.generates = task_of(cell.model).generates
        self.image = not task_of(cell.model).text
        options = self.options
        # TargetModel per request where several are named (drawn in the call: an image
        # model's one body serves every request)
        self.draw = target_draw(options, cell.model.name, cell.seed)
        self.content_type = "application/json"
        if self.image:
            self.content_type = options.content_type or CONTENT_TYPES[options.image_format][0]

    def import_libraries(self) -> None:
        import boto3
        import botocore.config

        session = boto3.session.Session(region_name=self.options.region or None)
        if not session.region_name:
            raise HttpError("no AWS region: set engine.region=... or AWS_REGION")
        config = botocore.config.Config(
            connect_timeout=min(CONNECT_TIMEOUT_S, self.timeout_s),
            read_timeout=self.timeout_s,
            retries={"total_max_attempts": 1},  # a failed request is a result, not retried
            max_pool_connections=max(10, self.cell.threads),
            tcp_keepalive=True,
        )
        # one client for every client thread (botocore clients are thread-safe; the pool
        # keeps a connection per thread), made before load so its setup is not timed
        self.runtime = session.client("sagemaker-runtime", config=config)
        self.control = session.client("sagemaker", config=config)
        self.region = session.region_name

    def load(self) -> LoadInfo:
        options = self.options
        facts = self.request_facts(
            f"{options.endpoint_name} ({self.region}, schema {options.schema})",
            "boto3 sagemaker-runtime, SigV4, no retries",
        )
        if options.target_model:
            facts["target_model"] = options.target_model
        if self.draw is not None:
            facts.update(self.draw.facts())
        if self.image:
            facts["payload"] = f"{self.content_type}, {options.image_format} by Pillow"
            facts["payload_bytes"] = len(self.make_batch())
        if options.describe:
            facts.update(self._describe())
        return LoadInfo(device="remote", extra=facts)

    def _describe(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            about = self.control.describe_endpoint(EndpointName=self.options.endpoint_name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("AccessDenied", "AccessDeniedException"):
                return {"endpoint_status": "unknown: DescribeEndpoint not permitted"}
            message = exc.response.get("Error", {}).get("Message", "")  # "Could not find ..."
            raise HttpError(
                f"DescribeEndpoint {self.options.endpoint_name}: "
                + (f"{code}: {message}" if code and message else code or str(exc))
            ) from exc
        status = about.get("EndpointStatus")
        if status != "InService":
            raise HttpError(f"endpoint {self.options.endpoint_name} is {status}, not InService")
        variants = [
            {
                "name": v.get("VariantName"),
                "instances": v.get("CurrentInstanceCount"),
                "weight": v.get("CurrentWeight"),
            }
            for v in about.get("ProductionVariants") or []
        ]
        facts: dict[str, Any] = {"endpoint_status": status, "variants": variants}
        serving = sum(v["instances"] or 0 for v in variants)
        if serving and serving != self.options.instances:  # the price counts the option's
            facts["price_note"] = (
                f"the endpoint runs {serving} instance(s); the row's price counts "
                f"engine.instances={self.options.instances}"
            )
        return facts

    # -- requests --------------------------------------------------------------------------
    def make_batch(self) -> bytes:
        """A request body of the model's seq_len-word prompts; an image model's picture
        (made once: every request of an image cell carries the same one)."""
        if self.image:
            if (picture := getattr(self, "_picture", None)) is None:
                picture = self._picture = encoded_image(self.cell, self.options.image_format)
            return picture
        prompts = [text_prompt(self.cell)] * self.cell.batch_size
        return self._body(prompts, self.cell.model.new_tokens)

    def batch_for(self, inputs: Inputs) -> bytes:
        """The body carrying the workload's prompts, as text (the endpoint's tokenizer counts
        them); TGI's parameters take one output length per request: the longest asked."""
        return self._body([words_for(p) for p in inputs.prompts], max(inputs.output_lens))

    def _body(self, prompts: list[str], new_tokens: int) -> bytes:
        if not self.generates:
            body: dict[str, Any] = {"inputs": prompts}
        elif self.options.schema == "chat":
            body = {
                "messages": [{"role": "user", "content": prompts[0]}],
                **openai_generation(new_tokens, self.options.stream),
            }
        else:
            body = {
                "inputs": prompts[0] if len(prompts) == 1 else prompts,
                "parameters": {"max_new_tokens": new_tokens, "do_sample": False, "details": True},
                "stream": self.options.stream,
            }
        return json.dumps(merged(body, self.extra)).encode()

    def _arguments(self, body: bytes) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "EndpointName": self.options.endpoint_name,
            "Body": body,
            "ContentType": self.content_type,
            "Accept": "application/json",
        }
        if self.draw is not None:  # in the timed call: a counter step and an index
            arguments["TargetModel"] = self.draw.next()
        elif self.options.target_model:
            arguments["TargetModel"] = self.options.target_model
        return arguments

    def infer(self, batch: bytes) -> Any:
        answer = self.runtime.invoke_endpoint(**self._arguments(batch))
        data = answer["Body"].read()
        try:
            return json.loads(data)
        except ValueError as exc:
            raise HttpError(f"the endpoint's answer is not JSON: {data[:200]!r}") from exc

    def generate_timed(self, batch: bytes, new_tokens: int) -> Reply:
        """Stream: the arrival time of each line carrying a token; the tokens counted from the
        endpoint's report where it gives one, else from the stream's lines."""
        if not self.options.stream:
            answer = self.infer(batch)
            asked = new_tokens * self.cell.batch_size
            reported = _reported_tokens(answer)
            self.check_count(reported, asked, "usage")
            if reported is None:
                return Reply(output_tokens=None, token_source="")
            return Reply(output_tokens=reported, token_source="usage")
        arguments = self._arguments(batch)
        arguments.pop("Accept")  # the stream's own content type
        answer = self.runtime.invoke_endpoint_with_response_stream(**arguments)
        times: list[int] = []
        reported: int | None = None
        for line in _lines(answer["Body"]):
            event = _event(line)
            if event is None:
                continue
            if _carries_token(event):
                times.append(time.perf_counter_ns())
            reported = _reported_tokens(event) or reported
        if not times:
            raise HttpError("the stream carried no token")
        counted = reported if reported is not None else len(times)
        source = "usage" if reported is not None else "stream"
        self.check_count(counted, new_tokens, source)
        return Reply(token_times=times, output_tokens=counted, token_source=source)


def _lines(stream: Any) -> Any:
    """Whole lines from the PayloadParts of a response stream (a line may span parts); a
    ModelStreamError or InternalStreamFailure raises from botocore's event stream."""
    pending = b""
    for event in stream:
        part = event.get("PayloadPart")
        if part is None:
            continue
        pending += part.get("Bytes", b"")
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def _event(line: bytes) -> dict[str, Any] | None:
    """One streamed JSON object: an SSE `data:` line (TGI, OpenAI) or a JSON line (LMI)."""
    line = line.strip()
    if line.startswith(b"data:"):
        line = line[5:].strip()
    if not line or line == b"[DONE]" or not line.startswith(b"{"):
        return None
    event = json.loads(line)
    return event if isinstance(event, dict) else None


def _carries_token(event: dict[str, Any]) -> bool:
    """A TGI/LMI token line (not a special token), or an OpenAI chunk with content."""
    token = event.get("token")
    if isinstance(token, dict):
        return not token.get("special", False)
    return first_prompt_token(event)


def _reported_tokens(answer: Any) -> int | None:
    """The generated-token count the endpoint reports: TGI/LMI `details.generated_tokens`
    (summed over a batch's answers), OpenAI `usage.completion_tokens`; None when absent."""
    if isinstance(answer, list):
        counts = [_reported_tokens(item) for item in answer]
        return (
            sum(c for c in counts if c is not None) if any(c is not None for c in counts) else None
        )
    if not isinstance(answer, dict):
        return None
    details = answer.get("details")
    if isinstance(details, dict) and details.get("generated_tokens") is not None:
        return int(details["generated_tokens"])
    usage = answer.get("usage")
    if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
        return int(usage["completion_tokens"])
    return None
