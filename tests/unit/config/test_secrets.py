"""The redaction pass: what it masks and what it leaves."""

from __future__ import annotations

import io

import pytest

from bench.config import secrets


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "_registered", set())
    secrets.refresh()


def test_secret_named_variables_and_registered_values_are_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG")
    monkeypatch.setenv("SOME_SETTING", "not-a-secret-value")
    secrets.refresh()
    secrets.register("plain-key-without-a-telling-name")
    text = "failed: wJalrXUtnFEMI/K7MDENG and plain-key-without-a-telling-name, not-a-secret-value"
    assert secrets.redact(text) == "failed: *** and ***, not-a-secret-value"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("HTTP 401: got Bearer abc.DEF-123", "HTTP 401: got Bearer ***"),
        ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "{'Authorization': '***'}"),
        ("Authorization: token-xyz", "Authorization: ***"),
        ("https://user:pa55@example.com/v1", "https://***@example.com/v1"),
        (
            "s3://bucket/key and http://127.0.0.1:8000/v1",
            "s3://bucket/key and http://127.0.0.1:8000/v1",
        ),
    ],
)
def test_what_looks_like_a_credential_is_masked_anywhere(text: str, masked: str) -> None:
    assert secrets.redact(text) == masked


def test_short_values_are_never_taken_for_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USE_TOKEN", "1")  # a flag, not a secret: masking "1" would wreck text
    secrets.refresh()
    assert secrets.redact("batch 1 of 10") == "batch 1 of 10"


def test_a_redacting_stream_masks_what_is_written() -> None:
    secrets.register("sk-secret-000111")
    out = io.StringIO()
    stream = secrets.RedactingStream(out)
    stream.write("error: sk-secret-000111\n")
    stream.flush()
    assert out.getvalue() == "error: ***\n"
