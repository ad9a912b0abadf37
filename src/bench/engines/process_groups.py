"""Every process bench starts is in a group of its own, and is ended with everything it
started, on every way out.

- A cell (executor=local) is the leader of a session of its own: its pid is its session and
  group id. The executor ends a cell by signalling its group (SIGINT when the sweep was
  interrupted, SIGTERM when the cell ran out of time), SIGKILL after a grace period, and then
  ends whatever is left in the cell's session: servers and helpers the cell started in groups
  of their own but never stopped (`end_session`).
- A server a cell starts (`start_group`) leads a group of its own inside the cell's session:
  the cell stops the server and all its workers with one signal to the group (`stop_group`),
  a terminal's Ctrl-C reaches it only through the cell, and the executor's session sweep
  still finds it. On Linux it also gets SIGTERM from the kernel when the cell dies however it
  dies (PR_SET_PDEATHSIG), which covers a cell killed where no executor watches it.
- A process that runs a cell (`bench cell`) or a sweep turns SIGTERM into SystemExit
  (`terminate_as_exit`), so its `finally` blocks run: the cell stops its server and gives its
  lease back; the sweep stops its cell and keeps its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

CELL_GRACE_S = 10.0  # a cell's time to stop what it started, once told to stop
LEFTOVER_GRACE_S = 5.0  # what a cell left in its session: from SIGTERM to SIGKILL
KILL_WAIT_S = 60.0  # how long a SIGKILLed process may take to be reaped (a D-state read, say)
POLL_S = 0.1  # between looks at what is left of a session: only after its cell has ended
PR_SET_PDEATHSIG = 1
EXIT_TERMINATED = 128 + signal.SIGTERM  # the shell's code for "ended by SIGTERM"


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to process group `pgid`; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _prctl() -> Callable[..., int] | None:
    """libc's prctl, on Linux; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _die_with(parent: int, prctl: Callable[..., int]) -> Callable[[], None]:
    """What a child runs before exec: SIGTERM when `parent` dies; at once if it already has
    (it may have died between fork and here, when the signal could no longer be armed)."""

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


def start_group(command: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start `command` leading a process group of its own in this process's session, its
    stdin closed (a background group that read the terminal would be stopped), armed to get
    SIGTERM when this process dies. The kernel sends that signal when the *thread* that
    started the child ends, so it is armed only from the main thread, which outlives the
    child."""
    prctl = _prctl() if threading.current_thread() is threading.main_thread() else None
    arm = _die_with(os.getpid(), prctl) if prctl is not None else None
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, process_group=0, preexec_fn=arm, **popen
    )


def stop_group(proc: subprocess.Popen[Any], grace_s: float) -> int | None:
    """SIGTERM the group `proc` leads, SIGKILL it after `grace_s`; then SIGKILL whatever the
    leader left in its group. Its exit code."""
    if proc.returncode is not None:  # reaped long ago: its group id may be another's now
        return proc.returncode
    if proc.poll() is None:
        signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    # The leader has ended (or ignored SIGTERM): workers it left in its group die with it.
    # The id cannot belong to another group yet: the leader was reaped just now, or not at all.
    signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=KILL_WAIT_S)
    return proc.returncode


def session_members(sid: int) -> list[int]:
    """The live processes of session `sid` (Linux: read from /proc; elsewhere: none found,
    and the caller's group signal is all there is)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # ended while we looked
            continue
        # after the command's closing parenthesis: state ppid pgrp session ...
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and fields[0] != "Z" and fields[3] == str(sid):
            members.append(int(entry))
    return members


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def end_session(sid: int, grace_s: float) -> list[int]:
    """End what is left of session `sid` after its leader has ended: SIGTERM, SIGKILL after
    `grace_s`. The pids it found. A session's id is never reused while a member lives, so
    nothing outside it is touched."""
    left = session_members(sid)
    if not left:
        return []
    _signal_all(left, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (still := session_members(sid)) and time.monotonic() < deadline:
        time.sleep(POLL_S)  # the cell has ended: nothing is being measured now
    _signal_all(still, signal.SIGKILL)
    return left


def stop_session(
    leader: int, first: int, ended: Callable[[float], bool], grace_s: float, tidy_s: float
) -> None:
    """End a process that leads a session of its own, and everything in that session: `first`
    to its group (SIGINT: as a terminal's Ctrl-C would; SIGTERM: its time is up), SIGKILL when
    `ended(seconds)` says it has not ended within `grace_s`, then `end_session` (`tidy_s` of
    grace for what is left). Interrupted again while it waits: SIGKILL at once, then raise."""
    try:
        if not signal_group(leader, first):  # not its own group yet (it has only just forked)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(leader, first)
        if not ended(grace_s):
            signal_group(leader, signal.SIGKILL)
            ended(KILL_WAIT_S)
    except BaseException:
        signal_group(leader, signal.SIGKILL)
        end_session(leader, 0.0)
        raise
    end_session(leader, tidy_s)


def first_signal(exc: BaseException) -> int:
    """What a child gets when its parent stops for `exc`: SIGINT for Ctrl-C, else SIGTERM."""
    return signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """While inside: SIGTERM raises SystemExit(143) in the main thread, so `finally` blocks
    run (a batch scheduler, `kill`, a CI runner's cancel all send SIGTERM first). Further
    SIGTERMs are ignored while those blocks run: the sender's SIGKILL follows its own grace
    period. Outside the main thread (signals are only handled there): nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminated(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(EXIT_TERMINATED)

    before = signal.signal(signal.SIGTERM, terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
