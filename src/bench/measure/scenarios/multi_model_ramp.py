"""A load test in Locust's form (its LoadTestShape stages): each stage names a user count, the
rate users are started (or stopped) at to reach it, and how long it lasts. Every user is a
closed-loop client with an optional think time between requests (Locust's wait_time).

A stage is measured from its last user change (its spawning done) to its end, after the
ramp's first warmup_s: requests sent while users are still changing, or during the warmup,
are counted (their failures too) but not measured, as loadgen leaves a warmup out. Timing is
loadgen's: each request from just before its call to just after the device synchronised, its
inputs drawn before."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.config.checks import ConfigError, positive
from bench.measure.loadgen import (  # loadgen's own bracket and records: alike samples
    ERROR_BACKOFF_S,
    LoadResult,
    Records,
    Request,
    _assemble,
    send,
)

STAGE_KEYS = ("users", "spawn_rate", "duration_s")


@dataclass(frozen=True)
class Stage:
    users: int  # users running once the stage's spawning is done
    spawn_rate: float  # users started (or stopped) per second until then
    duration_s: float  # the stage's length (Locust's `duration` is the running total)


def stages_of(key: str, values: Any) -> tuple[Stage, ...]:
    """The stages a config gives ({users, spawn_rate, duration_s} each), checked."""
    allowed = "a list of {users: int >= 0, spawn_rate: > 0, duration_s: > 0}, some users >= 1"
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(key, values, allowed)
    stages = []
    for i, value in enumerate(values):
        if not isinstance(value, dict) or set(value) != set(STAGE_KEYS):
            raise ConfigError(f"{key}[{i}]", value, allowed)
        users = value["users"]
        if not isinstance(users, int) or isinstance(users, bool) or users < 0:
            raise ConfigError(f"{key}[{i}].users", users, "must be an integer >= 0")
        rate = positive(f"{key}[{i}].spawn_rate", value["spawn_rate"])
        seconds = positive(f"{key}[{i}].duration_s", value["duration_s"])
        stages.append(Stage(users, float(rate), float(seconds)))
    if not any(s.users for s in stages):
        raise ConfigError(key, values, allowed)
    return tuple(stages)


def user_changes(stages: tuple[Stage, ...]) -> list[tuple[float, int]]:
    """(seconds from the ramp's start, users after it) for every user started or stopped, in
    order. A stage changes one user at a time, the first at once and then one every
    1/spawn_rate s (as Locust's local runner spawns), and stops changing when it ends, its
    count reached or not."""
    changes, users, start = [], 0, 0.0
    for stage in stages:
        step = 1 if stage.users > users else -1
        for i in range(abs(stage.users - users)):
            if i / stage.spawn_rate >= stage.duration_s:
                break
            users += step
            changes.append((start + i / stage.spawn_rate, users))
        start += stage.duration_s
    return changes


def users_at(changes: list[tuple[float, int]], t: float) -> int:
    """The user count the schedule gives at `t` seconds."""
    count = 0
    for at, users in changes:
        if at > t:
            break
        count = users
    return count


@dataclass(frozen=True)
class Span:
    start_s: float
    measured_from_s: float  # its last user change, or the warmup's end if later
    end_s: float
    reached: bool  # whether its user count was reached before it ended
    users: int  # its user count


def spans(stages: tuple[Stage, ...], warmup_s: float) -> list[Span]:
    """Each stage's times, and the part of it that is measured."""
    changes = user_changes(stages)
    found, start = [], 0.0
    for stage in stages:
        end = start + stage.duration_s
        inside = [(at, u) for at, u in changes if start <= at < end]
        last = inside[-1][0] if inside else start
        reached = (inside[-1][1] if inside else users_at(changes, start)) == stage.users
        found.append(Span(start, max(last, warmup_s), end, reached, stage.users))
        start = end
    return found


Tag = tuple[int, int]  # a request's own figures, kept beside its record
PARTS = ("measured", "ramping", "warmup")  # where a request's send falls in its stage


class _UserRecords(Records):
    """loadgen's records of one user in one part of a stage, and per request: the users
    running when it was sent and its tag (multi_model: its model, and whether it was cold)."""

    def __init__(self, tid: int) -> None:
        super().__init__(tid)
        self.users: list[int] = []
        self.tags: list[Tag] = []


@dataclass
class StageResult:
    measured: LoadResult  # the requests sent in its measured part
    users: np.ndarray  # per measured request (LoadResult's order): users running at its send
    tags: np.ndarray  # per measured request: its tag, one row each
    sent: int  # every request sent in the stage, measured or not
    failed: int  # ... of which failed
    first_failure: tuple[int, int] | None  # its first failed request: (ns after the ramp
    # started, users running when it was sent)


@dataclass
class RampResult:
    stages: list[StageResult]
    trace: list[tuple[float, int]]  # (seconds from the start, users) at every change
    started_ns: int  # perf_counter_ns when the ramp began
    warmup_n: int  # requests sent during the warmup


class _Log:
    """Every user's records, per stage and part. A user's records are made and written by
    that user's thread alone, and read once every user has stopped."""

    def __init__(self, spans: list[Span], warmup_s: float, started_ns: int) -> None:
        self.spans, self.warmup_s, self.started_ns = spans, warmup_s, started_ns
        self.parts: list[dict[str, dict[int, _UserRecords]]] = [
            {part: {} for part in PARTS} for _ in spans
        ]

    def records(self, uid: int, sent_ns: int, users: int) -> _UserRecords:
        """The records a request sent at `sent_ns`, `users` running, goes to. A stage's
        measured part starts at its last change as done, not as due (the spawner may wake a
        little late): a request sent before it saw one user too few."""
        t = (sent_ns - self.started_ns) / 1e9
        index = next((i for i, s in enumerate(self.spans) if t < s.end_s), len(self.spans) - 1)
        span = self.spans[index]
        if t < self.warmup_s:
            part = "warmup"
        elif span.reached and t >= span.measured_from_s and users == span.users:
            part = "measured"
        else:
            part = "ramping"
        return self.parts[index][part].setdefault(uid, _UserRecords(uid))


def _measured_arrays(
    records: list[_UserRecords], opened_ns: int, warmup_n: int
) -> tuple[LoadResult, np.ndarray, np.ndarray]:
    """loadgen's LoadResult of `records`, and their users and tags in its order (the same
    stable sort by send time `_assemble` applies)."""
    records = records or [_UserRecords(0)]
    result = _assemble(records, opened_ns, warmup_n, "stages_done")
    order = np.argsort(
        np.concatenate([np.asarray(r.scheduled, dtype=np.int64) for r in records]), kind="stable"
    )
    users = np.concatenate([np.asarray(r.users, dtype=np.int32) for r in records])[order]
    tags = np.asarray([t for r in records for t in r.tags], dtype=np.int64).reshape(-1, 2)
    return result, users, tags[order]


def run_users(
    request: Request,
    sync: Callable[[], None],
    stages: tuple[Stage, ...],
    warmup_s: float,
    think_s: tuple[float, float] = (0.0, 0.0),
    seed: int = 0,
    tag: Callable[[Any], Tag] = lambda drawn: (-1, -1),
) -> RampResult:
    """Run the stages: users started and stopped on `user_changes`' schedule (the most
    recently started stops first, once its request in flight is done), each sending
    `request`s in a closed loop and waiting a think time drawn uniformly from `think_s`
    (seeded per user) after each. Failed requests are counted, never fatal."""
    changes = user_changes(stages)
    stage_spans = spans(stages, warmup_s)
    end_s = stage_spans[-1].end_s
    clock = time.perf_counter_ns
    started = clock()
    log = _Log(stage_spans, warmup_s, started)
    running = [0]  # the user count, as the spawner last set it
    over = threading.Event()
    threads: list[tuple[threading.Thread, threading.Event]] = []
    stopped: list[threading.Thread] = []
    errors: list[BaseException] = []

    def user(uid: int, stop: threading.Event) -> None:
        rng = np.random.default_rng((seed, uid))
        try:
            while not stop.is_set() and not over.is_set():
                drawn = request.draw(uid, -1)  # the next inputs, before the clock starts
                users = running[0]
                t0, t1, settled, error = send(request, sync, uid, drawn, clock)
                records = log.records(uid, t0, users)
                records.users.append(users)
                records.tags.append(tag(drawn))
                if settled is None:
                    records.fail(t0, t0, t1, error)
                    stop.wait(max(ERROR_BACKOFF_S, _think(rng, think_s)))
                    continue
                records.add(t0, t0, t1, settled)
                if (pause := _think(rng, think_s) + settled.think_s) > 0:
                    stop.wait(pause)  # a user reading the answer: not measured
        except BaseException as exc:  # surfaced to the caller once every user is joined
            errors.append(exc)
            over.set()

    uids = itertools.count()
    trace = [(0.0, 0)]
    for at, count in changes:
        if over.wait(max(0.0, started / 1e9 + at - clock() / 1e9)):
            break  # a user raised
        running[0] = count  # before a new user's first request reads it
        trace.append(((clock() - started) / 1e9, count))
        if count > len(threads):
            stop = threading.Event()
            uid = next(uids)
            worker = threading.Thread(target=user, args=(uid, stop), name=f"bench-user-{uid}")
            worker.daemon = True
            worker.start()
            threads.append((worker, stop))
        else:  # the user finishes its request in flight (counted at the count it saw)
            worker, stop = threads.pop()
            stop.set()
            stopped.append(worker)
    over.wait(max(0.0, started / 1e9 + end_s - clock() / 1e9))
    over.set()
    for _, stop in threads:
        stop.set()  # a user thinking wakes now rather than at its think time's end
    for worker in [*stopped, *(w for w, _ in threads)]:
        worker.join()
    if errors:
        raise errors[0]
    return _result(log, trace, started)


def _think(rng: np.random.Generator, think_s: tuple[float, float]) -> float:
    low, high = think_s
    return float(rng.uniform(low, high)) if high > 0 else 0.0


def _result(log: _Log, trace: list[tuple[float, int]], started: int) -> RampResult:
    warmup_n = sum(len(r.ok) for parts in log.parts for r in parts["warmup"].values())
    stages = []
    for parts, span in zip(log.parts, log.spans, strict=True):
        opened = started + int(span.measured_from_s * 1e9)
        measured = list(parts["measured"].values())
        result, users, tags = _measured_arrays(measured, opened, warmup_n)
        every = [r for part in parts.values() for r in part.values()]
        failures = [
            (sent - started, users)
            for r in every
            for sent, users, ok in zip(r.sent, r.users, r.ok, strict=True)
            if not ok
        ]
        stages.append(
            StageResult(
                measured=result,
                users=users,
                tags=tags,
                sent=sum(len(r.ok) for r in every),
                failed=len(failures),
                first_failure=min(failures) if failures else None,
            )
        )
    return RampResult(stages, trace, started, warmup_n)
