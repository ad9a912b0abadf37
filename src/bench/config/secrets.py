"""One redaction pass for the secrets bench holds, over every error text, row and log line.

What counts as a secret: the value of every environment variable whose name says it is one
(`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*API_KEY*`, `*ACCESS_KEY*`, `*CREDENTIAL*`:
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, HF_TOKEN, ...), values registered at run time (the
key behind `engine.api_key_env`, whatever its name), and what looks like one wherever it
appears: the word after `Bearer`, an `Authorization` header's value, a URL's user-info. A
server that echoes a request's headers in its error body (a 401 that quotes the bearer
token) would otherwise put the key into the row's `error`, the aggregate and the logs.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any, TextIO

MASK = "***"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|CREDENTIAL", re.I)
MIN_SECRET_CHARS = 6  # shorter values ("1", "true") are not secrets and would mask noise
PATTERNS = (  # (what, its replacement)
    (re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{MASK}"),
    (
        re.compile(
            r"""(?i)(\bauthorization['"]?\s*[:=]\s*['"]?)(?!bearer\b)(?:[a-z]+\s+)?[^\s'",}]+"""
        ),
        rf"\g<1>{MASK}",
    ),
    # a URL's user-info: scheme://user:password@host
    (re.compile(r"""(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s"']+@"""), rf"\g<1>{MASK}@"),
)

MAY_HOLD_ONE = re.compile(r"(?i)bearer|authorization|://")

_registered: set[str] = set()
_lock = threading.Lock()
_known: list[str] | None = None  # the environment's secrets, read once (and on register)


def register(value: str | None) -> None:
    """A secret bench holds that no variable name announces (an API key read from the
    variable `engine.api_key_env` names)."""
    global _known
    if value and len(value) >= MIN_SECRET_CHARS:
        with _lock:
            _registered.add(value)
            _known = None


def known_secrets() -> list[str]:
    """The secret values to mask, longest first (so a secret containing another is masked
    whole). The environment is read once per process: redacting a 100,000-line plan must
    not walk it per line."""
    global _known
    with _lock:
        if _known is None:
            found = {
                value
                for name, value in os.environ.items()
                if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_CHARS
            }
            _known = sorted(found | _registered, key=len, reverse=True)
        return _known


def redact(text: str) -> str:
    """`text` with every known secret and every bearer token, Authorization value and URL
    password masked."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    if MAY_HOLD_ONE.search(text):  # one scan for the common case: nothing to mask
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
    return text


def refresh() -> None:
    """Read the environment again at the next redaction (a forked cell gets its own)."""
    global _known
    with _lock:
        _known = None


def redact_output() -> None:
    """Mask secrets in everything this process writes through sys.stdout and sys.stderr
    (tracebacks, log lines, progress, a cell's row): the terminal, and a cell's log."""
    refresh()
    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


class RedactingStream:
    """A text stream that masks secrets in what is written to it (a process's stderr: a
    traceback or a log line quoting an error body)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # everything else is the stream's own
        return getattr(self._stream, name)
