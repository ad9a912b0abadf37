"""What a failed request to an endpoint raises, shared by the engines and their protocols (a
module of its own: the protocol modules and the engines import it, not each other). The
class names are what a row's request_errors and error columns show."""

from __future__ import annotations


class HttpError(RuntimeError):
    """The endpoint answered with an error status, or not as the protocol says."""


class UsageMismatch(RuntimeError):
    """The server generated another number of tokens than asked for."""
