"""The error an HTTP endpoint's answer raises, shared by the OpenAI and KServe protocols (its
own module: the protocol modules and the engine import it, not each other)."""

from __future__ import annotations


class HttpError(RuntimeError):
    """The endpoint answered with an error status, or not as the protocol says."""
