"""A test stub of the SageMaker runtime's wire protocol (not SageMaker, not a model), for
engine=sagemaker where moto has no such route: `InvokeEndpoint`,
`InvokeEndpointWithResponseStream` (AWS event-stream framing, PayloadPart events) and the
control plane's `DescribeEndpoint`, on loopback, with the timing and faults of the OpenAI test
server (tests/support/openai_server.py).

It answers only SigV4-signed requests for the `sagemaker` signing name (403 otherwise: boto3
must sign as it would for AWS). Bodies follow the container schemas engine=sagemaker speaks:
TGI/LMI (`inputs` + `parameters.max_new_tokens`; streamed as TGI's `data:{"token": ...}`
lines, the last with `details.generated_tokens`) and OpenAI chat (`messages`). Every other
streamed token line is split across two PayloadParts, as a real stream may split it.
An encoder's body (`inputs` without `parameters`) gets one vector per input.

A multi-model endpoint's TargetModel (the `X-Amzn-SageMaker-Target-Model` header) is taken
for any name, and an image body (`image/png`, `image/jpeg`, `application/x-image`) is decoded
with Pillow: one that does not decode is a ModelError, one that does gets ten class
probabilities after `first-token-ms` (a forward pass). `--log FILE` appends a JSON line per
invocation: its route, TargetModel, ContentType and, for an image, its format and size, so a
test can count the requests each target got.

    python -m tests.support.sagemaker_server --port 0 [--fail 0.1] [--hang 0.05]
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zlib
from typing import Any

from tests.support.openai_server import Handler, arguments, serve

ROUTE = re.compile(r"^/endpoints/(?P<name>[^/]+)/(?P<kind>invocations(?:-response-stream)?)$")
IMAGE_TYPES = ("image/png", "image/jpeg", "application/x-image")
TARGET_HEADER = "X-Amzn-SageMaker-Target-Model"


def event_message(payload: bytes, headers: dict[str, str]) -> bytes:
    """One message of AWS's event-stream encoding: prelude (total and header lengths, CRC32),
    string headers, payload, CRC32 of all before it."""
    encoded = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def payload_part(data: bytes) -> bytes:
    return event_message(
        data,
        {
            ":message-type": "event",
            ":event-type": "PayloadPart",
            ":content-type": "application/octet-stream",
        },
    )


class SageMakerHandler(Handler):
    def _error(self, status: int, kind: str, message: str) -> None:
        data = json.dumps({"__type": kind, "message": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._error(404, "UnknownOperationException", "not a SageMaker route")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        if not (
            auth.startswith("AWS4-HMAC-SHA256 Credential=") and "/sagemaker/aws4_request" in auth
        ):
            self._error(403, "IncompleteSignatureException", "not SigV4-signed for sagemaker")
            return
        if self.headers.get("X-Amz-Target") == "SageMaker.DescribeEndpoint":
            self._describe(json.loads(raw or b"{}"))
            return
        route = ROUTE.match(self.path.split("?")[0])
        if route is None:
            self._error(404, "UnknownOperationException", self.path)
            return
        behaviour = self.behaviour
        fate = "ok" if behaviour.null else behaviour.fate()
        if fate == "fail":
            self._error(424, "ModelError", "injected failure")
            return
        if fate == "hang":
            time.sleep(behaviour.hang_s)
        content_type = self.headers.get("Content-Type", "")
        seen: dict[str, Any] = {"target": self.headers.get(TARGET_HEADER)}
        seen["content_type"] = content_type
        if content_type in IMAGE_TYPES:
            self._image(raw, seen)
            return
        behaviour.record(route["kind"], seen)
        body = json.loads(raw or b"{}")
        if route["kind"] == "invocations":
            self._invoke(body)
        else:
            self._stream(body)

    def _image(self, raw: bytes, seen: dict[str, Any]) -> None:
        """Decode the picture as an image container would (Pillow), then answer ten class
        probabilities; a body that is no picture is the container's ModelError."""
        from PIL import Image

        try:
            with Image.open(io.BytesIO(raw)) as picture:
                picture.load()
                seen["image"] = {
                    "format": picture.format,
                    "size": list(picture.size),
                    "mode": picture.mode,
                }
        except Exception as exc:  # whatever Pillow raises for bytes that are no image
            self.behaviour.record("invocations", {**seen, "image": None})
            self._error(424, "ModelError", f"cannot decode the image: {exc}")
            return
        self.behaviour.record("invocations", seen)
        if not self.behaviour.null:
            time.sleep(self.behaviour.first_token_s)
        self._json(200, [0.1] * 10)  # type: ignore[arg-type]

    def _describe(self, request: dict[str, Any]) -> None:
        name = request.get("EndpointName", "")
        variant = {"VariantName": "AllTraffic", "CurrentInstanceCount": 1, "CurrentWeight": 1.0}
        answer = {
            "EndpointName": name,
            "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{name}",
            "EndpointConfigName": name,
            "EndpointStatus": "InService",
            "ProductionVariants": [variant],
            "CreationTime": 0,
            "LastModifiedTime": 0,
        }
        self._json(200, answer)

    def _tokens(self, body: dict[str, Any]) -> int:
        behaviour = self.behaviour
        asked = body.get("max_tokens") or (body.get("parameters") or {}).get("max_new_tokens", 16)
        tokens = 1 if behaviour.null else int(asked)
        return tokens - 1 if behaviour.short else tokens

    def _invoke(self, body: dict[str, Any]) -> None:
        behaviour = self.behaviour
        inputs = body.get("inputs")
        if "parameters" not in body and "messages" not in body:  # an encoder: vectors
            count = len(inputs) if isinstance(inputs, list) else 1
            self._json(200, [[0.0] * 8 for _ in range(count)])  # type: ignore[arg-type]
            return
        made = self._tokens(body)
        if not behaviour.null:
            time.sleep(behaviour.first_token_s + behaviour.token_s * (made - 1))
        if "messages" in body:
            choice = {"index": 0, "message": {"role": "assistant", "content": "x" * made}}
            self._json(200, {"choices": [choice], "usage": {"completion_tokens": made}})
            return
        count = len(inputs) if isinstance(inputs, list) else 1
        answer = [{"generated_text": "x" * made, "details": {"generated_tokens": made}}] * count
        self._json(200, answer)  # type: ignore[arg-type]

    def _stream(self, body: dict[str, Any]) -> None:
        behaviour, chat = self.behaviour, "messages" in body
        made = self._tokens(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("X-Amzn-SageMaker-Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for step in range(made):
            if not behaviour.null:
                time.sleep(behaviour.first_token_s if step == 0 else behaviour.token_s)
            if chat:
                event: dict[str, Any] = {"choices": [{"index": 0, "delta": {"content": "x"}}]}
            else:
                last = step == made - 1
                event = {
                    "token": {"id": 87, "text": "x", "special": False},
                    "generated_text": "x" * made if last else None,
                    "details": {"generated_tokens": made} if last else None,
                }
            line = f"data:{json.dumps(event)}\n\n".encode()
            if step % 2:  # a line split across two parts, as a real stream may send it
                self._chunk(payload_part(line[:7]))
                self._chunk(payload_part(line[7:]))
            else:
                self._chunk(payload_part(line))
        if chat:
            usage = {"choices": [], "usage": {"completion_tokens": made}}
            self._chunk(payload_part(f"data:{json.dumps(usage)}\n\n".encode()))
        self._chunk(b"")


def main() -> int:
    return serve(SageMakerHandler, arguments(__doc__.splitlines()[0]).parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
