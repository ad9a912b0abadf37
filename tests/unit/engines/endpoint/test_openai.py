"""The OpenAI-compatible protocol without a server: request bodies, a stream's chunks
counted and stamped, and usage that disagrees with the stream."""

from __future__ import annotations

import json

import pytest

from bench.engines.base import Inputs
from bench.engines.endpoint import openai
from bench.engines.endpoint.errors import HttpError, UsageMismatch


def test_bodies_carry_ids_or_a_conversation_and_exactly_the_tokens_asked() -> None:
    inputs = Inputs(((1, 2), (3,)), (4, 4))
    base = {"model": "m", **openai.openai_generation(4, stream=True)}
    body = json.loads(openai.request_body("completions", base, inputs))
    assert body["prompt"] == [[1, 2], [3]] and body["max_tokens"] == body["min_tokens"] == 4
    assert body["ignore_eos"] and body["stream_options"] == {"include_usage": True}
    chat = json.loads(openai.request_body("chat", base, Inputs(((1, 2),), (4,))))
    assert chat["messages"][0]["role"] == "user" and "prompt" not in chat
    loose = openai.openai_generation(4, stream=False, exact=False)
    assert loose == {"max_tokens": 4, "stream": False}
    embedded = json.loads(openai.request_body("embeddings", {"model": "m"}, inputs))
    assert embedded == {"model": "m", "input": [[1, 2], [3]]}


def test_an_embeddings_answer_needs_a_vector_per_input() -> None:
    sent = json.dumps({"input": [[1], [2]]}).encode()
    one = json.dumps({"data": [{"embedding": [0.0]}]}).encode()
    with pytest.raises(HttpError, match="1 embeddings for 2 inputs"):
        openai.checked_answer(one, "embeddings", sent)


def test_a_stream_counts_token_ids_or_chunks_and_stamps_the_first_prompt() -> None:
    stream = openai.Streamed()
    stream.add({"index": 0, "token_ids": [5, 6], "text": "ab"})
    stream.add({"index": 1, "text": "c"})  # another prompt's: counted, not stamped
    stream.add({"index": 0, "delta": {"role": "assistant"}})  # no token
    assert stream.counted == 3 and len(stream.times) == 2 and not stream.exact
    reply = openai.streamed_reply(stream)
    assert reply.output_tokens == 3 and reply.token_source == "stream" and reply.answer == (5, 6)
    openai.check_streamed_count(stream, 3)
    with pytest.raises(UsageMismatch, match="chunks of text"):
        openai.check_streamed_count(stream, 5)
