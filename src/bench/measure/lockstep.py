"""One cell served by several processes in lockstep: a tensor-parallel group launched by
`mpirun` (FasterTransformer runs one MPI rank per GPU), of which rank 0 measures and writes the
row and every other rank repeats each request rank 0 makes, in the same order, as the group's
collective operations need.

- Launch: `bench cell` for a cell whose engine needs N > 1 ranks (`Engine.mpi_ranks`), when
  not already under mpirun, runs itself again as `mpirun -np N python -m bench cell ...` (same
  manifest and index) and returns mpirun's exit code. So every executor launches such a cell
  alike: the local one, a Slurm task, an AWS Batch child, a container.
- Channel: the launcher names a loopback port (BENCH_LOCKSTEP); rank 0 listens on it, every
  other rank connects. Rank 0 sends one JSON line per step to all followers: `load` (when
  rank 0 starts loading: the group's constructors run together), then `infer` /
  `generate_timed N` per request (and `outputs N` for the quality check), then `stop`. A
  follower answers each request with one line (`ok`, or its error), and rank 0's request
  waits for every answer: a request's latency is the group's, and a follower that failed
  fails the request instead of hanging the next collective. The round trip this adds is
  measured by `engine=sleep engine.mpi_ranks=2`.
- Rank 0 closing the channel on any path (row written, stood down, failed) ends the followers:
  they write nothing, take no lease and print nothing on stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from bench.engines.mpi import mpi_world

CHANNEL_ENV = "BENCH_LOCKSTEP"  # host:port rank 0 listens on (set by the launcher)
CONNECT_TIMEOUT_S = 300.0  # followers wait this long for rank 0 to listen, rank 0 for them


class LockstepError(RuntimeError):
    """The group fell out of step: a follower failed, or never connected."""


def mpirun_command(ranks: int, argv: list[str], address: str) -> list[str]:
    """`mpirun -np N python -m bench ARGV` with the channel's address in every rank's
    environment (-x exports it to ranks on other nodes too)."""
    command = ["mpirun", "-np", str(ranks), "-x", f"{CHANNEL_ENV}={address}"]
    if os.geteuid() == 0:  # containers run as root more often than not; Open MPI refuses it
        command.append("--allow-run-as-root")
    # one rank per GPU wants no CPU binding of its own: the cell's thread policy decides
    command += ["--bind-to", "none", "--oversubscribe"]
    return [*command, sys.executable, "-m", "bench", *argv]


def relaunch(ranks: int, argv: list[str]) -> int:
    """Run `bench ARGV` as `ranks` MPI ranks and wait: mpirun's exit code."""
    from bench.engines.ports import free_port

    address = f"127.0.0.1:{free_port()}"
    command = mpirun_command(ranks, argv, address)
    print(f"lockstep: {' '.join(command)}", file=sys.stderr, flush=True)
    return subprocess.run(command, check=False).returncode


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall((json.dumps(message) + "\n").encode())


class Leader:
    """Rank 0's end: accepts the followers, announces each step, waits for their answers."""

    def __init__(self, address: str, followers: int) -> None:
        host, port = address.rsplit(":", 1)
        self.listener = socket.create_server((host, int(port)))
        self.expected = followers
        self.peers: list[tuple[socket.socket, Any]] = []
        self.lock = threading.Lock()  # a group serves one request at a time, in one order

    def _accept(self) -> None:
        self.listener.settimeout(CONNECT_TIMEOUT_S)
        while len(self.peers) < self.expected:
            try:
                sock, _ = self.listener.accept()
            except TimeoutError as exc:
                raise LockstepError(
                    f"{len(self.peers)} of {self.expected} follower ranks connected in "
                    f"{CONNECT_TIMEOUT_S:g} s"
                ) from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.peers.append((sock, sock.makefile("r")))

    def announce(self, step: dict[str, Any]) -> None:
        """Tell every follower the next step (waiting for them to connect the first time)."""
        if len(self.peers) < self.expected:
            self._accept()
        for sock, _ in self.peers:
            _send(sock, step)

    def answers(self) -> None:
        """Every follower's answer to the last request; a failure raises."""
        for rank, (_, reader) in enumerate(self.peers, start=1):
            line = reader.readline()
            if not line:
                raise LockstepError(f"rank {rank} left the group")
            answer = json.loads(line)
            if answer.get("error"):
                raise LockstepError(f"rank {rank}: {answer['error']}")

    def close(self) -> None:
        for sock, _ in self.peers:
            with contextlib.suppress(OSError):  # a follower that already left
                _send(sock, {"step": "stop"})
            sock.close()
        self.peers = []
        self.listener.close()


def lead(engine: Any) -> Any:
    """Rank 0 of a group: `engine`'s requests announced to the followers and answered by them
    before they count as done; its load announced first. Outside a group: `engine` as is."""
    address = os.environ.get(CHANNEL_ENV)
    rank, size = mpi_world()
    if not address or rank != 0 or size < 2:
        return engine
    leader = Leader(address, size - 1)
    engine.lockstep = leader
    load, close = engine.load, engine.close

    def grouped(method: Any, step: str) -> Any:
        def call(batch: Any, *args: Any) -> Any:
            with leader.lock:
                leader.announce({"step": step, "args": list(args)})
                try:
                    return method(batch, *args)
                finally:
                    leader.answers()

        return call

    def load_together() -> Any:
        leader.announce({"step": "load"})
        loaded = load()
        loaded.extra = {**loaded.extra, "mpi_ranks": size, "lockstep": "ranks 1.. repeat rank 0"}
        return loaded

    def close_all() -> None:
        try:
            close()
        finally:
            leader.close()

    engine.load = load_together
    engine.close = close_all
    # what a scenario's request calls (bench.measure.scenarios.request_for); generate_timed calls
    # generate inside, so only the outer call is a step
    engine.infer = grouped(engine.infer, "infer")
    engine.generate_timed = grouped(engine.generate_timed, "generate_timed")
    # the quality check's outputs (its infer and generate, one step: see Engine.outputs)
    engine.outputs = grouped(engine.outputs, "outputs")
    return engine


def follow(cell: Any, engine_class: Any) -> int:
    """A follower rank: connect to rank 0, load (its own `engine_class(cell)`) when it loads,
    repeat each request it makes, until it stops or leaves. Exit code 0 unless this rank
    failed to load."""
    host, port = os.environ[CHANNEL_ENV].rsplit(":", 1)
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            sock = socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S)
            break
        except OSError:
            if time.monotonic() > deadline:
                print(f"lockstep: rank 0 never listened at {host}:{port}", file=sys.stderr)
                return 1
            time.sleep(0.1)  # rank 0 is still starting; nothing is measured yet
    sock.settimeout(None)  # rank 0 measures for as long as its scenario says
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    reader = sock.makefile("r")
    engine = None
    try:
        for line in reader:
            step = json.loads(line)
            if step["step"] == "stop":
                break
            if step["step"] == "load":
                engine = engine_class(cell)
                engine.import_libraries()
                engine.prepare()
                engine.load()
                engine.initialize()
                batch = engine.make_batch()  # the same inputs as rank 0's (seeded by the cell)
                continue
            try:
                getattr(engine, step["step"])(batch, *step["args"])
                engine.synchronize()
                _send(sock, {"ok": True})
            except Exception as exc:  # the request fails on rank 0 with this message
                _send(sock, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        if engine is not None:
            engine.close()
        sock.close()
    return 0
