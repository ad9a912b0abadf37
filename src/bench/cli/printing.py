"""What the verbs share in printing: secrets masked in what is said, stdout kept for the
verb's own output while a cell runs, a failing cell's traceback held back, and a row as
JSON."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any


def redact(text: str) -> str:
    """A message with the secrets bench holds masked (bench.config.secrets): errors echo
    endpoints, and servers echo headers."""
    from bench.config.secrets import redact as masked

    return masked(text)


def say_error(message: str) -> None:
    """A usage error's one line on stderr, secrets masked."""
    print(f"error: {redact(message)}", file=sys.stderr)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Everything written to stdout goes to stderr meanwhile: Python's sys.stdout and file
    descriptor 1 itself, which child processes inherit (vLLM's engine core logs there)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def held_traceback(show: bool) -> Iterator[list[str]]:
    """The runner prints a failing cell's traceback on stderr, which a sweep keeps in the
    cell's log; on `run`'s terminal it is 40 lines under a one-line summary, so it is shown
    only when asked (`traceback=true`) and held (the list yielded) otherwise. It stands in
    for the traceback module in bench.cell.runner alone, while the cell runs."""
    import traceback

    from bench.cell import runner

    held: list[str] = []
    if show:
        yield held
        return

    class Held:
        def __getattr__(self, name: str) -> Any:  # everything else is the module's own
            return getattr(traceback, name)

        @staticmethod
        def print_exc(*args: Any, **kwargs: Any) -> None:
            held.append(traceback.format_exc())

    saved = runner.traceback
    runner.traceback = Held()  # type: ignore[assignment]
    try:
        yield held
    finally:
        runner.traceback = saved


def printable_row(row: dict[str, Any]) -> str:
    """A row as indented JSON: its set columns, less the resolved config it was run with."""
    shown = {k: v for k, v in row.items() if v is not None and k != "config_json"}
    return json.dumps(shown, indent=1, default=str)
