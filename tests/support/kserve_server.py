"""A KServe v2 / Triton HTTP protocol test server (not Triton, not a model): the routes
engine=http's `api=kserve` uses, on loopback, with the timing and faults of the OpenAI test
server (tests/support/openai_server.py), so requests can be checked against what it received.

- `GET /v2/health/ready`, `/v2/health/live`: 200. `GET /v2`: server metadata.
- `GET /v2/models/{name}/ready`: 200 for a model it serves (`--models a,b,...`; none given:
  any name), 400 otherwise, as Triton answers for a model it has not loaded.
- `POST /v2/models/{name}/infer`: the body is checked as Triton checks it (400 with
  `{"error": ...}` otherwise): `inputs` a list of tensors, each with a name, an integer shape,
  a v2 datatype and as many values as the shape holds, of that datatype's kind (integers for
  INT*, numbers for FP*), all with one batch dimension; with `--inputs NAME:DTYPE,...` exactly
  those tensors. After `first-token-ms` (a forward pass) it answers one FP32 output,
  `[batch, 10]`, as a classifier's logits; `fail` and `hang` as the OpenAI server's.
- `GET /v2/models/stats`: per model, the inferences answered (Triton's statistics extension,
  `inference_count`), so a test can count the requests each model got. `--log FILE` appends
  a JSON line per infer request: the model and each input's name, shape and datatype.

    python -m tests.support.kserve_server --port 0 [--models m0,m1] [--inputs input_ids:INT64]
The bound port is printed on stdout as `listening on PORT`.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter
from typing import Any, ClassVar

from tests.support.openai_server import Handler, arguments, serve

INFER = re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/[^/]+)?/(?P<route>infer|ready)$")
INTEGER_TYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64")
FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")
CLASSES = 10


class KServeHandler(Handler):
    # the server's state, shared by the handler of every connection
    models: ClassVar[frozenset[str]] = frozenset()  # served models; empty: any name
    inputs: ClassVar[dict[str, str]] = {}  # expected input name -> datatype; empty: any
    counts: ClassVar[Counter[str]] = Counter()  # inferences answered per model
    counts_lock = threading.Lock()

    def _error_400(self, message: str) -> None:
        self._json(400, {"error": message})

    def _serves(self, model: str) -> bool:
        return not self.models or model in self.models

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path in ("/v2/health/ready", "/v2/health/live"):
            self._json(200, {})
        elif path == "/v2":
            self._json(200, {"name": "kserve-test-server", "version": "0", "extensions": []})
        elif path == "/v2/models/stats":
            with self.counts_lock:
                stats = [
                    {"name": name, "version": "1", "inference_count": count}
                    for name, count in sorted(self.counts.items())
                ]
            self._json(200, {"model_stats": stats})
        elif (route := INFER.match(path)) and route["route"] == "ready":
            if self._serves(route["model"]):
                self._json(200, {})
            else:
                self._error_400(f"Request for unknown model: '{route['model']}' is not found")
        else:
            self._json(404, {"error": "Not Found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        route = INFER.match(self.path.split("?")[0])
        if route is None or route["route"] != "infer":
            self._json(404, {"error": "Not Found"})
            return
        model = route["model"]
        if not self._serves(model):
            self._error_400(f"Request for unknown model: '{model}' is not found")
            return
        try:
            body = json.loads(raw)
            batch = self._batch_of(body)
        except ValueError as exc:
            self._error_400(str(exc))
            return
        behaviour = self.behaviour
        behaviour.record(
            model,
            {
                "model": model,
                "inputs": [
                    {k: t.get(k) for k in ("name", "shape", "datatype")} for t in body["inputs"]
                ],
            },
        )
        fate = "ok" if behaviour.null else behaviour.fate()
        if fate == "fail":
            self._json(500, {"error": "injected failure"})
            return
        if fate == "hang":
            time.sleep(behaviour.hang_s)
        if not behaviour.null:
            time.sleep(behaviour.first_token_s)
        with self.counts_lock:
            self.counts[model] += 1
        output = {
            "name": "logits",
            "datatype": "FP32",
            "shape": [batch, CLASSES],
            "data": [0.0] * (batch * CLASSES),
        }
        self._json(200, {"model_name": model, "model_version": "1", "outputs": [output]})

    def _batch_of(self, body: Any) -> int:
        """The request's batch size, once every input tensor is as the protocol says."""
        tensors = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(tensors, list) or not tensors:
            raise ValueError("the request has no 'inputs' list")
        got = {}
        batches = set()
        for tensor in tensors:
            if not isinstance(tensor, dict):
                raise ValueError(f"an input is not an object: {tensor!r}")
            name, shape = tensor.get("name"), tensor.get("shape")
            datatype, data = tensor.get("datatype"), tensor.get("data")
            if not isinstance(name, str) or not name:
                raise ValueError("an input has no name")
            if not (isinstance(shape, list) and shape and all(_whole(d) for d in shape)):
                raise ValueError(f"input '{name}': shape {shape!r} is not a list of integers")
            if datatype not in INTEGER_TYPES + FLOAT_TYPES:
                raise ValueError(f"input '{name}': unknown datatype {datatype!r}")
            values = _flat(data) if isinstance(data, list) else None
            if values is None or len(values) != math.prod(shape):
                held = "no data" if values is None else f"{len(values)} values"
                raise ValueError(f"input '{name}': {held} for shape {shape}")
            kind = _whole if datatype in INTEGER_TYPES else _number
            if not all(kind(v) for v in values):
                raise ValueError(f"input '{name}': values that are not {datatype}")
            got[name] = datatype
            batches.add(shape[0])
        if self.inputs and got != self.inputs:
            raise ValueError(f"expected inputs {self.inputs}, got {got}")
        if len(batches) != 1:
            raise ValueError(f"inputs disagree on the batch dimension: {sorted(batches)}")
        return batches.pop()


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _flat(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.extend(_flat(value))
        else:
            out.append(value)
    return out


def main() -> int:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="the served models, comma-separated")
    parser.add_argument("--inputs", default="", help="expected inputs: NAME:DTYPE,...")
    args = parser.parse_args()
    KServeHandler.models = frozenset(m for m in args.models.split(",") if m)
    KServeHandler.inputs = dict(p.split(":", 1) for p in args.inputs.split(",") if p)
    return serve(KServeHandler, args)


if __name__ == "__main__":
    raise SystemExit(main())
