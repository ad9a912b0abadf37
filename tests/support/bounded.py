"""Run a call in a thread and fail, rather than hang the suite, when it does not return."""

from __future__ import annotations

import threading


def run_bounded(fn, timeout_s: float = 10.0):
    """Run fn in a thread; fail (rather than hang the suite) if it does not return in time."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout_s)
    assert not worker.is_alive(), f"did not return within {timeout_s} s"
    return box


class BoomError(RuntimeError):
    pass
