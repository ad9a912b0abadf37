"""A fork server for local cells: one process that has imported the libraries the sweep's
engines need, and nothing else, forks each cell's process, so a cell no longer pays ~5 s of
`import torch, transformers` that the cell before it already paid.

What a forked cell shares with a fresh one: it has touched no device (importing torch
initialises no CUDA; the server never calls into it), no thread pool (torch's intra-op team is
created at the first parallel region, which only the cell runs; the cell sets its own thread
count as before), no model, no allocator state beyond the import's; it gets its own
environment, stdin, log and progress descriptors. What differs: the engine's import_s is
what is left to import (the architecture's modeling code), since the libraries are in memory
already, and the row's engine_info says so (`fork_server_preload`: what the server had
imported); the measurement is the same (benchmarks/fidelity.py --forked checks it).

Protocol (JSON lines): the server prints {"ready": true, "import_s": ...} once its imports are
done; for each request {"argv", "env", "log"} on its stdin it forks, answers {"pid": N}, waits
for the child and answers {"exit": code} (negative: the signal that ended it). One cell at a
time: the local executor runs cells one after another. Each forked cell leads a session of
its own (its pid is its group id): the executor stops a cell past its timeout, or when the
sweep is interrupted, through its group and sweeps its session (bench.engines.process_groups);
the server, its parent, reaps it. A forked cell holds a shared lock on its log
(bench.executors.cell_logs) as long as it, or anything it started, may write there.

    python -m bench.executors.forkserver MODULE...     (the local executor starts it)
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import time
import traceback
from typing import IO, Any

from bench.cell.runner import FORK_SERVER_PRELOAD_VARIABLE
from bench.engines.process_groups import (
    CELL_GRACE_S,
    LEFTOVER_GRACE_S,
    end_session,
    first_signal,
    stop_session,
)
from bench.executors.cell_logs import lock_shared

READY_TIMEOUT_S = 300.0
# what every cell imports, whatever its engine: imported before forking, by name (the server
# runs the bench program in its children; it does not call into it)
CELL_MODULES = ("bench.cli", "bench.executors.job", "bench.cell.runner")


class ForkServerError(RuntimeError):
    """The server died or said something unexpected: the executor falls back to processes."""


def _answer(server: subprocess.Popen, timeout_s: float | None) -> dict[str, Any] | None:
    """The server's next line (None when `timeout_s` passed first)."""
    stream: IO[str] = server.stdout  # type: ignore[assignment]
    if timeout_s is not None:
        ready, _, _ = select.select([stream], [], [], max(timeout_s, 0.0))
        if not ready:
            return None
    line = stream.readline()
    if not line:
        raise ForkServerError(f"the fork server exited (code {server.poll()})")
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        raise ForkServerError(f"the fork server said {line[:200]!r}") from None


class ForkServer:
    """The executor's end: start the server, run cells through it, close it."""

    def __init__(self, preload: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "bench.executors.forkserver", *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # its cells log to their own files
            text=True,
            pass_fds=pass_fds,
        )
        ready = _answer(self.server, READY_TIMEOUT_S)
        if not ready or not ready.get("ready"):
            self.close()
            raise ForkServerError(f"the fork server did not start: {ready}")
        self.import_s = float(ready.get("import_s") or 0.0)

    def run(
        self, argv: list[str], env: dict[str, str], log: str, timeout_s: float
    ) -> tuple[str, int | None]:
        """Run `python -m bench ARGV` forked: (exited | timeout, exit code)."""
        assert self.server.stdin is not None
        try:
            self.server.stdin.write(json.dumps({"argv": argv, "env": env, "log": log}) + "\n")
            self.server.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ForkServerError(f"the fork server is gone: {exc}") from None
        started = _answer(self.server, READY_TIMEOUT_S)
        if not started or "pid" not in started:
            raise ForkServerError(f"the fork server did not fork: {started}")
        pid = int(started["pid"])
        try:
            ended = _answer(self.server, timeout_s)
        except BaseException as exc:  # Ctrl-C or SIGTERM in the sweep: the cell ends with it
            self._stop(pid, first_signal(exc))
            raise
        if ended is None:  # past its time: stop it; the server reaps it and says so
            self._stop(pid, signal.SIGTERM)
            return "timeout", None
        end_session(pid, LEFTOVER_GRACE_S)  # what the cell started and left running
        return "exited", int(ended["exit"])

    def _reaped(self, limit_s: float) -> bool:
        """Whether the server says it reaped the cell within `limit_s`."""
        try:
            return _answer(self.server, limit_s) is not None
        except (ForkServerError, OSError, ValueError):  # the server is gone: nobody says so
            return False

    def _stop(self, pid: int, first: int) -> None:
        """Stop a forked cell and everything it started (SIGKILL after a grace period)."""
        stop_session(pid, first, self._reaped, CELL_GRACE_S, LEFTOVER_GRACE_S)

    def close(self) -> None:
        if self.server.stdin is not None:
            with contextlib.suppress(OSError):
                self.server.stdin.close()
        try:
            self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()


def _child(request: dict[str, Any]) -> None:
    """In the forked process: become the cell's process, run it, exit (never returns)."""
    code = 1
    try:
        os.setsid()  # a session of its own: the executor ends it and all it started together
        os.environ.clear()
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        lock_shared(log)  # held through stdout and stderr until the last writer ends
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as a fresh python's
        # what `python -m bench ARGV` runs (its __main__ raises SystemExit with the code)
        sys.argv = ["bench", *request["argv"]]
        runpy.run_module("bench", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def serve(preload: list[str]) -> None:
    started = time.perf_counter()
    for name in (*preload, *CELL_MODULES):
        importlib.import_module(name)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the cell and the sweep
    print(json.dumps({"ready": True, "import_s": time.perf_counter() - started}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        request["env"][FORK_SERVER_PRELOAD_VARIABLE] = ",".join(preload)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1:])
