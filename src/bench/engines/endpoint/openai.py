"""The OpenAI-compatible HTTP protocol, as engine=http speaks it (`/v1/completions`,
`/v1/chat/completions`, `/v1/embeddings`): the request bodies and the reading of the replies,
streamed or not (bench.engines.endpoint.http sends them).

- A body carries what the cell's workload drew for the request: `batch_size` prompts of token
  ids for completions and embeddings (a dataset's text as text), a conversation of text for
  chat (ids as words, the server's usage counts its tokens). Generation asks for the drawn
  output length (`max_tokens`, and exactly that many with vLLM's `min_tokens` and
  `ignore_eos`); sampling is the server's default unless `temperature` / `top_p` are set.
- A streamed reply (server-sent events) stamps each chunk of the first prompt as it arrives.
  A chunk that carries its token ids (vLLM's `return_token_ids`) stamps each of them at its
  arrival; one without is taken for one token, as vLLM and TGI usually stream them (a server
  that packs several tokens into such a chunk gives a TPOT per chunk; its usage still counts
  the tokens). Output tokens are the server's usage where it reports it, else counted from
  the stream; the reply's token_source says which.
"""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable
from typing import Any

from bench.config.checks import ConfigError
from bench.engines.base import Inputs, Reply, words_for
from bench.engines.endpoint.errors import HttpError, UsageMismatch
from bench.engines.endpoint.pool import Deadline

PATHS = {
    "completions": "/v1/completions",
    "chat": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
}
MODELS_PATH = "/v1/models"
LIST_CALL_S = 5.0  # the model listing's round trip at load


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


def sampled_generation(options: Any, new_tokens: int) -> dict[str, Any]:
    """The generation fields of a body, with the options' sampling where set."""
    body = openai_generation(new_tokens, options.stream, options.exact_length)
    if options.temperature is not None:
        body["temperature"] = options.temperature
    if options.top_p is not None:
        body["top_p"] = options.top_p
    return body


def request_body(api: str, base: dict[str, Any], inputs: Inputs) -> bytes:
    """The encoded body of one request: `base` (every field but the inputs) with the token
    ids of completions and embeddings (the texts where the workload has them), or chat's
    conversation of text."""
    prompts: list[Any] = list(inputs.texts or inputs.prompts)  # JSON writes tuples as lists
    if api == "embeddings":
        return json.dumps({**base, "input": prompts}).encode()
    body = dict(base)
    if api == "chat":  # one conversation per request (batch_size 1)
        body["messages"] = chat_messages(inputs)
    else:
        body["prompt"] = prompts
    return json.dumps(body).encode()


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


def listed_model(call: Callable[..., tuple[int, bytes]]) -> str | None:
    """The one model the server lists at /v1/models (a vLLM server names it after its
    --model path), when it lists exactly one. `call(method, path, body, timeout)` is the
    engine's own round trip."""
    try:
        status, data = call("GET", MODELS_PATH, None, timeout=LIST_CALL_S)
        listed = json.loads(data).get("data") if status == 200 else None
    except (OSError, ValueError):
        return None
    ids = [m.get("id") for m in listed or [] if isinstance(m, dict)]
    return ids[0] if len(ids) == 1 and ids[0] else None


def checked_answer(data: bytes, api: str, body: bytes) -> dict[str, Any]:
    """A non-streamed answer's JSON; an embeddings answer must carry one vector per input
    of the request `body` (HttpError otherwise)."""
    answer = json.loads(data)
    got = len(answer.get("data") or answer.get("choices") or [])
    if api == "embeddings":
        asked = len(json.loads(body)["input"])
        if got != asked:
            raise HttpError(f"{got} embeddings for {asked} inputs")
    return answer


def answered_reply(answer: dict[str, Any]) -> Reply:
    """A non-streamed answer's reply: the tokens its usage counts, the first answer."""
    usage = answer.get("usage") or {}
    return Reply(
        output_tokens=usage.get("completion_tokens"),
        token_source="usage" if usage.get("completion_tokens") is not None else "",
        input_tokens=usage.get("prompt_tokens"),
        answer=answer_text(answer),
    )


def streamed_reply(stream: Streamed) -> Reply:
    """A stream's reply: its token times, the tokens its usage counts (else as streamed),
    the first prompt's answer."""
    usage = stream.usage or {}
    reported = usage.get("completion_tokens")
    return Reply(
        token_times=stream.times,
        output_tokens=reported if reported is not None else stream.counted,
        token_source="usage" if reported is not None else "stream",
        input_tokens=usage.get("prompt_tokens"),
        answer=tuple(stream.ids) if stream.ids else "".join(stream.text),
    )


def read_events(
    connection: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    deadline: Deadline,
) -> Streamed:
    """A stream's server-sent events to its end (`[DONE]`), each read under the deadline; the
    rest of the body is read too, so the connection can be reused."""
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


def check_streamed_count(stream: Streamed, got: int | None) -> None:
    """Usage that claims another count than the stream carried fails the request: its token
    ids, or its chunks (one token each, as vLLM, SGLang and TGI stream by default; a server
    that packs several per chunk times its tokens by chunk too, so its TPOT would be wrong as
    well)."""
    if got is None or stream.counted == got:
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


def answer_text(answer: dict[str, Any]) -> str | tuple[int, ...] | None:
    """A non-streamed answer's first choice: its token ids, else its text or message."""
    choices = answer.get("choices") or [{}]
    first = choices[0]
    if first.get("token_ids"):
        return tuple(first["token_ids"])
    return first.get("text") or (first.get("message") or {}).get("content")


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
