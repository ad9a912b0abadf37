"""engine=http's server mode: the server a cell starts itself and stops after measuring.

`server_command` has `{port}` (a free loopback port), `{checkpoint}`, `{model}` and `{python}`
(the cell's own interpreter: its environment's packages) filled in. The server's output goes
to the cell's stderr, so to the cell's log. It leads a process group of its own in the cell's
session (bench.engines.process_groups): stopped with its workers on every way out of the cell
(close() after a failure, Ctrl-C or SIGTERM: SIGTERM, then SIGKILL after STOP_GRACE_S), ended
by the executor with the cell's session when the cell is killed, and sent SIGTERM by the
kernel when the cell dies. The row records its exit code.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from bench.engines.endpoint.errors import HttpError
from bench.engines.process_groups import start_group, stop_group

STOP_GRACE_S = 30.0


def server_argv(template: str, port: int, checkpoint: str, model: str) -> list[str]:
    """The server's command line: `template` with its fields filled in."""
    fields = {
        "port": str(port),
        "checkpoint": checkpoint,
        "model": model,
        "python": sys.executable,  # this cell's interpreter: its environment's packages
    }
    return shlex.split(template.format(**fields))


class LocalServer:
    """One server this cell starts from `template` (engine.server_command)."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None

    def start(self, checkpoint: str, model: str) -> int:
        """Start it on a free loopback port; the port."""
        from bench.engines.ports import free_port

        port = free_port()
        command = server_argv(self.template, port, checkpoint, model)
        sys.stderr.flush()  # the server writes to the cell's stderr: its log
        # a group of its own in the cell's session: stopped with all its workers by one
        # signal, and found by the executor's sweep of the session if the cell never stops it
        self.process = start_group(command, stdout=sys.stderr.fileno(), stderr=subprocess.STDOUT)
        return port

    def fail_if_exited(self) -> None:
        """Raise HttpError when the server has already exited (waiting on it is then vain)."""
        if self.process is not None and self.process.poll() is not None:
            raise HttpError(
                f"the server exited with code {self.process.returncode} before it was healthy "
                "(its output is in the cell's log)"
            )

    def stop(self) -> int | None:
        """SIGTERM the server's process group, SIGKILL after a grace period; its exit code.
        Forgotten only once stopped: a stop cut short (SIGTERM to the cell) is done again by
        close()."""
        if self.process is not None:
            self.exit_code = stop_group(self.process, STOP_GRACE_S)
            self.process = None
        return self.exit_code
