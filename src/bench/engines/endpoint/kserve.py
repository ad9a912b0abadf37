"""The KServe v2 / Triton HTTP inference protocol, as engine=http speaks it with `api=kserve`:
the request bodies and the check of an answer (bench.engines.endpoint.http sends them).

- `POST /v2/models/{name}/infer` with `{"inputs": [{"name", "shape", "datatype", "data"}]}`,
  data flat in row-major order. An encoder sends its token ids (INT64, or INT32 for a model
  exported so) and the attention mask, and with a third input name the token type ids
  (zeros); a batch's prompts of different lengths are padded (id 0, mask 0) to the longest.
  An image model sends one FP32 (or FP16) tensor of normalised pixels, channels first
  unless `input_layout=nhwc`.
- Readiness: `GET /v2/health/ready` (the server), then `GET /v2/models/{name}/ready` for each
  model a request may go to; `GET /v2` (server metadata) names the server in engine_info.
- An answer is `{"model_name", "outputs": [{"name", "shape", "datatype", "data"}]}`: every
  output must lead with the request's batch dimension and carry as many values as its shape
  says (a server that answers something else fails the request, as for the OpenAI APIs).
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bench.config.checks import ConfigError
from bench.config.tasks import task_of
from bench.engines.endpoint.errors import HttpError

if TYPE_CHECKING:
    from bench.config.schema import CellConfig

TEXT_DATATYPES = ("INT64", "INT32")
IMAGE_DATATYPES = ("FP32", "FP16")
LAYOUTS = ("nchw", "nhwc")
TEXT_INPUTS = ("input_ids", "attention_mask")  # transformers' names, as an ONNX export keeps
IMAGE_INPUTS = ("pixel_values",)
MAX_TEXT_INPUTS = 3  # ids, mask, token types
HEALTH_PATH = "/v2/health/ready"
READY_CALL_S = 5.0  # one readiness or metadata round trip at load


def check_options(options: Any) -> None:
    """engine=http's KServe options: its input tensors, and several models (the targets)
    only where a request names its model in the path (api=kserve)."""
    kserve = options.api == "kserve"
    if not kserve and (options.target_models or options.target_names):
        raise ConfigError(
            "engine.target_models" if options.target_models else "engine.target_names",
            options.target_models or list(options.target_names),
            "several models need engine.api=kserve (a model per request, named in its path)",
        )
    names = tuple(options.input_names)
    if names and not kserve:
        raise ConfigError("engine.input_names", list(names), "only with engine.api=kserve")
    if any(not isinstance(n, str) or not n for n in names) or len(names) > MAX_TEXT_INPUTS:
        raise ConfigError(
            "engine.input_names",
            list(names),
            f"1 to {MAX_TEXT_INPUTS} tensor names: ids, mask, token types (an image: pixels)",
        )
    allowed = ("", *TEXT_DATATYPES, *IMAGE_DATATYPES)
    if options.input_datatype not in allowed:
        raise ConfigError(
            "engine.input_datatype", options.input_datatype, "allowed: " + ", ".join(allowed[1:])
        )
    if options.input_layout not in LAYOUTS:
        raise ConfigError("engine.input_layout", options.input_layout, "allowed: nchw, nhwc")


def unsupported_reason(cell: CellConfig, options: Any) -> str | None:
    """What api=kserve cannot send for this cell with engine=http's `options`: generation (v2
    infer is one forward pass), or input options that do not fit the model's task."""
    task = task_of(cell.model)
    if task.generates:
        return (
            "engine.api=kserve sends one forward pass (v2 infer); a generation model needs "
            "engine.api=completions or chat"
        )
    names = tuple(options.input_names)
    datatype = options.input_datatype
    fits = TEXT_DATATYPES if task.text else IMAGE_DATATYPES
    if datatype and datatype not in fits:
        what = "token ids" if task.text else "pixels"
        return f"engine.input_datatype={datatype} cannot carry {what} (use {', '.join(fits)})"
    if not task.text and len(names) > 1:
        return f"an image model takes one pixel tensor; engine.input_names gives {len(names)}"
    return None


def readiness(call: Callable[..., tuple[int, bytes]], models: tuple[str, ...]) -> dict[str, Any]:
    """Every model a request may go to answers its ready route with 200 (else the cell fails
    before measuring, naming the ones that did not); the server's metadata (`GET /v2`: its
    name and version, where it gives them) for engine_info. `call(method, path, body,
    timeout)` is the engine's own round trip."""
    not_ready = []
    for model in models:
        try:
            status, _ = call("GET", ready_path(model), None, timeout=READY_CALL_S)
        except OSError as exc:
            raise HttpError(f"{ready_path(model)}: {exc}") from exc
        if status != 200:
            not_ready.append(f"{model} (HTTP {status})")
    if not_ready:
        shown = ", ".join(not_ready[:5]) + (
            f" and {len(not_ready) - 5} more" if len(not_ready) > 5 else ""
        )
        raise HttpError(f"{len(not_ready)} of {len(models)} models not ready: {shown}")
    facts: dict[str, Any] = {"protocol": "kserve v2 (POST /v2/models/{name}/infer)"}
    try:
        status, data = call("GET", "/v2", None, timeout=READY_CALL_S)
        about = json.loads(data) if status == 200 else {}
    except (OSError, ValueError):
        about = {}
    if isinstance(about, dict) and about.get("name"):
        facts["server"] = f"{about['name']} {about.get('version', '')}".strip()
    return facts


def infer_path(model: str) -> str:
    return f"/v2/models/{urllib.parse.quote(model, safe='')}/infer"


def ready_path(model: str) -> str:
    return f"/v2/models/{urllib.parse.quote(model, safe='')}/ready"


def input_names(names: tuple[str, ...], text: bool) -> tuple[str, ...]:
    """The request's input tensor names: the option's, else transformers' own."""
    return tuple(names) or (TEXT_INPUTS if text else IMAGE_INPUTS)


def text_body(
    prompts: list[list[int]] | tuple[tuple[int, ...], ...], names: tuple[str, ...], datatype: str
) -> dict[str, Any]:
    """Token ids (and mask, and token types) of a batch, padded to its longest prompt."""
    width = max(len(p) for p in prompts)
    ids: list[int] = []
    mask: list[int] = []
    for prompt in prompts:
        pad = width - len(prompt)
        ids.extend(prompt)
        ids.extend([0] * pad)
        mask.extend([1] * len(prompt))
        mask.extend([0] * pad)
    shape = [len(prompts), width]
    tensors = [ids, mask, [0] * len(ids)][: len(names)]
    return {
        "inputs": [
            {"name": name, "shape": shape, "datatype": datatype, "data": data}
            for name, data in zip(names, tensors, strict=True)
        ]
    }


def image_body(cell: CellConfig, name: str, datatype: str, layout: str) -> dict[str, Any]:
    """batch_size seeded normalised images as one pixel tensor."""
    from bench.engines.endpoint.images import pixel_tensor

    shape, data = pixel_tensor(cell, layout)
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


def datatype_of(datatype: str, text: bool) -> str:
    """The input datatype: the option's, else INT64 for token ids and FP32 for pixels."""
    return datatype or ("INT64" if text else "FP32")


def checked_answer(data: bytes, batch: int) -> dict[str, Any]:
    """The answer's JSON, once its outputs are as the protocol says; ValueError otherwise."""
    answer = json.loads(data)
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise ValueError(f"no outputs in the answer: {data[:200]!r}")
    for output in outputs:
        shape = output.get("shape") if isinstance(output, dict) else None
        if not isinstance(shape, list) or not shape or shape[0] != batch:
            raise ValueError(
                f"output {output.get('name') if isinstance(output, dict) else output!r} has "
                f"shape {shape}: the batch's {batch} rows should lead it"
            )
        values = output.get("data")
        if values is not None and _count(values) != math.prod(shape):
            raise ValueError(
                f"output {output.get('name')} carries {_count(values)} values for shape {shape}"
            )
    return answer


def _count(values: Any) -> int:
    """Values in a flat or nested JSON array."""
    if isinstance(values, list):
        return sum(_count(v) for v in values)
    return 1
