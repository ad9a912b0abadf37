"""Load generators: closed loop (latency, each ramp stage, capacity) and open loop (Poisson,
or a trace's own arrival times).

Each run combines three parts: the requests (a `Request` draws its next inputs from the cell's
workload, bench.measure.workloads, before the clock starts), an arrival strategy (closed loop:
a client sends when its last request was answered; open loop: a schedule of arrivals drawn up
front), and the stop rules that end the window (bench.measure.stops).

Timing: each request is bracketed by `time.perf_counter_ns()` taken immediately before the
call and immediately after the device synchronise, so a latency is send -> complete result on
the host. Nothing else (bookkeeping, the stop check) is inside that bracket. A generating
request returns the host times its tokens arrived (the engine synchronises before stamping
each), from which TTFT and inter-token gaps come. Client threads block in the engine; the
coordinating thread sleeps between checks: nothing spins a core while a cell measures.

Open loop: arrivals are scheduled up front (exponential gaps at the target rate) and latency
runs from the *scheduled* time, so a request that waits for a free client is not hidden the
way a closed loop hides it (coordinated omission).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bench import stats
from bench.config.schema import ScenarioConfig
from bench.measure import progress, stops


@dataclass
class Settled:
    """What one completed request carried and produced, read outside the timed bracket
    (-1: not known)."""

    token_times: Sequence[int] | None = None  # when each token of the first sequence arrived
    input_tokens: int = -1  # prompt tokens sent (the workload's count)
    server_input_tokens: int = -1  # prompt tokens the server reported
    output_asked: int = -1  # tokens asked for, every sequence
    output_tokens: int = -1  # tokens produced, every sequence, as counted (token_source)
    token_source: str = ""  # usage | stream | engine
    turn: int = -1  # multi_turn: the turn of its session
    think_s: float = 0.0  # the client waits this long before its next request


class Request(Protocol):
    """What a load generator sends: `draw` the next request's inputs (outside the timed
    bracket), call with them (timed: the request itself), then `settle` its outcome (outside
    the bracket again), or `failed` when the call raised."""

    def draw(self, client: int, arrival: int) -> Any: ...

    def __call__(self, drawn: Any) -> Any: ...

    def settle(self, client: int, drawn: Any, raw: Any) -> Settled: ...

    def failed(self, client: int, drawn: Any) -> None: ...


class Plain:
    """A request that is a plain callable (no inputs drawn): the calibration loops, tests."""

    def __init__(self, call: Callable[[], Sequence[int] | None]) -> None:
        self.call = call

    def draw(self, client: int, arrival: int) -> None:
        return None

    def __call__(self, drawn: Any) -> Sequence[int] | None:
        return self.call()

    def settle(self, client: int, drawn: Any, raw: Any) -> Settled:
        return Settled(token_times=raw)

    def failed(self, client: int, drawn: Any) -> None:
        pass


def as_request(request: Request | Callable[[], Sequence[int] | None]) -> Request:
    return request if hasattr(request, "settle") else Plain(request)  # type: ignore[return-value]


CHECK_INTERVAL_S = stops.CHECK_INTERVAL_S
CHECK_GROWTH = stops.CHECK_GROWTH
GIL_SWITCH_S = 50e-6  # the interpreter's switch interval while the coordinator checks
ERROR_BACKOFF_S = 0.001  # a client pauses after a failed request: a refusing engine is not spun


@dataclass
class LoadResult:
    """Per-request records of the measured window (warmup excluded). Times are ns after the
    window opened; `latency_ns` runs from the scheduled time (= sent time in a closed loop)."""

    thread: np.ndarray  # int16: which client sent it
    scheduled_ns: np.ndarray  # int64
    sent_ns: np.ndarray  # int64
    done_ns: np.ndarray  # int64
    ttft_ns: np.ndarray  # int64: scheduled (= send) -> first token; -1: no token times
    ok: np.ndarray  # bool: false when the request raised
    token_gaps_ns: np.ndarray  # int64: gaps between consecutive tokens, all requests pooled
    window_s: float  # window open -> last completion
    warmup_n: int  # warmup requests issued in total
    stop_reason: str  # intervals_tight | targets_met | max_duration | schedule_done
    stage: np.ndarray | None = None  # int16 ramp stage per request; None = single stage
    dispatch_delay_ns: np.ndarray | None = None  # open loop: scheduled -> queued, per arrival
    dropped: int = 0  # open loop: arrivals never sent before the budget ran out
    target_rate_per_s: float | None = None
    opened_ns: int = 0  # perf_counter_ns when the window opened (telemetry keeps its samples)
    failures: dict[str, int] = field(default_factory=dict)  # "Class: message" -> count
    # per request, -1 where not known (a failed request, an engine that does not say)
    input_tokens: np.ndarray | None = None  # int32: prompt tokens sent
    server_input_tokens: np.ndarray | None = None  # int32: prompt tokens the server reported
    output_tokens_asked: np.ndarray | None = None  # int32: tokens asked for
    output_tokens: np.ndarray | None = None  # int32: tokens produced, as counted
    stream_tokens: np.ndarray | None = None  # int32: token times of the first sequence
    turn: np.ndarray | None = None  # int16: multi_turn's turn of its session
    token_sources: dict[str, int] = field(default_factory=dict)  # usage | stream | engine

    def failure_text(self, most: int = 3) -> str | None:
        """The commonest things failed requests raised, with their counts (None: none)."""
        common = sorted(self.failures.items(), key=lambda kv: -kv[1])[:most]
        return "; ".join(f"{count} x {what}" for what, count in common) or None

    @property
    def n(self) -> int:
        """Completed (ok) requests: the sample count behind every figure."""
        return int(self.ok.sum())

    @property
    def errors(self) -> int:
        return int((~self.ok).sum())

    @property
    def latency_ns(self) -> np.ndarray:
        """Latencies of the ok requests."""
        return (self.done_ns - self.scheduled_ns)[self.ok]


Sent = tuple[int, int, "Settled | None", "Exception | None"]


def send(
    request: Request,
    sync: Callable[[], None],
    client: int,
    drawn: Any,
    clock: Callable[[], int] = time.perf_counter_ns,
) -> Sent:
    """One request, timed: (sent, done, settled, None), or (sent, failed_at, None, the
    exception) for a request that raised. The bracket holds the request and the device sync
    alone: the inputs are drawn before it and the reply settled (tokens counted) after it.
    Every loop that measures requests (closed, open, a ramp's users) sends through here."""
    t0 = clock()
    try:
        raw = request(drawn)
        sync()
    except Exception as exc:
        failed_at = clock()
        request.failed(client, drawn)
        return t0, failed_at, None, exc
    t1 = clock()
    return t0, t1, request.settle(client, drawn, raw), None


class Records:
    """One client's records; appended outside the timed bracket, read by the coordinator."""

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.scheduled: list[int] = []
        self.sent: list[int] = []
        self.done: list[int] = []
        self.ttft: list[int] = []
        self.ok: list[bool] = []
        self.gaps: list[int] = []
        self.failures: Counter[str] = Counter()  # what the failed requests raised
        self.counts: list[tuple[int, int, int, int, int, int]] = []  # COUNT_FIELDS
        self.sources: Counter[str] = Counter()

    def fail(self, scheduled: int, sent: int, done: int, exc: BaseException) -> None:
        """A failed request: its record, and what it raised (class and message, short)."""
        self.add(scheduled, sent, done, FAILED, ok=False)
        self.failures[f"{type(exc).__name__}: {str(exc)[:160]}"] += 1

    def add(self, scheduled: int, sent: int, done: int, settled: Settled, ok: bool = True) -> None:
        tokens = settled.token_times
        self.counts.append(
            (
                settled.input_tokens,
                settled.server_input_tokens,
                settled.output_asked,
                settled.output_tokens,
                len(tokens) if tokens else -1,
                settled.turn,
            )
        )
        if settled.token_source:
            self.sources[settled.token_source] += 1
        self.scheduled.append(scheduled)
        self.sent.append(sent)
        self.done.append(done)
        self.ok.append(ok)  # after sent and done: a reader takes the first len(ok) of each
        if tokens:
            self.ttft.append(tokens[0] - scheduled)  # like latency: from the scheduled time
            self.gaps.extend(b - a for a, b in itertools.pairwise(tokens))
        else:
            self.ttft.append(-1)


FAILED = Settled()
COUNT_FIELDS = (
    "input_tokens",
    "server_input_tokens",
    "output_tokens_asked",
    "output_tokens",
    "stream_tokens",
    "turn",
)


def _assemble(records: list[Records], start_ns: int, warmup_n: int, stop_reason: str) -> LoadResult:
    def column(name: str, dtype: type) -> np.ndarray:
        parts = [np.asarray(getattr(r, name), dtype=dtype) for r in records]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

    thread = np.concatenate([np.full(len(r.sent), r.tid, dtype=np.int16) for r in records])
    scheduled, sent = column("scheduled", np.int64), column("sent", np.int64)
    done, ttft, ok = column("done", np.int64), column("ttft", np.int64), column("ok", bool)
    order = np.argsort(scheduled, kind="stable")
    end_ns = int(done.max()) if done.size else start_ns
    counts = np.concatenate(
        [np.asarray(r.counts, dtype=np.int32).reshape(-1, len(COUNT_FIELDS)) for r in records]
        or [np.zeros((0, len(COUNT_FIELDS)), dtype=np.int32)]
    )[order]
    return LoadResult(
        thread=thread[order],
        scheduled_ns=scheduled[order] - start_ns,
        sent_ns=sent[order] - start_ns,
        done_ns=done[order] - start_ns,
        ttft_ns=ttft[order],
        ok=ok[order],
        token_gaps_ns=column("gaps", np.int64),
        window_s=(end_ns - start_ns) / 1e9,
        warmup_n=warmup_n,
        stop_reason=stop_reason,
        opened_ns=start_ns,
        failures=dict(sum((r.failures for r in records), Counter())),
        **{name: counts[:, i] for i, name in enumerate(COUNT_FIELDS[:-1])},
        turn=counts[:, -1].astype(np.int16),
        token_sources=dict(sum((r.sources for r in records), Counter())),
    )


class _Shared:
    """State the client threads share; the counter is touched outside the timed bracket."""

    def __init__(self, scenario: ScenarioConfig) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.minimums_met = threading.Event()
        self.count = 0
        self.start_ns = 0
        self.stop_reason = "targets_met"
        self.errors: list[BaseException] = []
        self.rules = stops.WindowRules.of(scenario)
        self.wait_for_intervals = self.rules.gate is not None
        self.budget = stops.MaxDuration(int(scenario.max_duration_s * 1e9))

    def open_window(self) -> None:
        # said before the window's clock starts; every client waits at the barrier meanwhile
        progress.enter("measure", self.rules.plan)
        self.start_ns = time.perf_counter_ns()

    def record_and_check(self, now_ns: int) -> None:
        with self.lock:
            self.count += 1
            count = self.count
        elapsed = now_ns - self.start_ns
        if (reason := self.rules.reason(count, elapsed)) is not None:
            self.finish(reason)
        elif self.rules.gate is not None and self.rules.gate(count, elapsed):
            self.minimums_met.set()  # the coordinator decides when the intervals are tight

    def check_deadline(self, now_ns: int) -> None:
        if self.budget(self.count, now_ns - self.start_ns):
            self.finish("max_duration")

    def finish(self, reason: str) -> None:
        with self.lock:
            if not self.stop.is_set():
                self.stop_reason = reason
                self.stop.set()


def _warm_up(
    request: Request,
    sync: Callable[[], None],
    count: int,
    seconds: float,
    tolerate_errors: bool = False,
    client: int = 0,
) -> int:
    """At least `count` requests and at least `seconds` of them; returns how many ran."""
    deadline = time.perf_counter() + seconds
    done = 0
    while done < count or time.perf_counter() < deadline:
        done += 1
        # a session moves on as it settles; its think time is skipped
        if (error := send(request, sync, client, request.draw(client, -1))[3]) is not None:
            if not tolerate_errors:
                raise error
            time.sleep(ERROR_BACKOFF_S)
    return done


def _client(
    records: Records,
    request: Request,
    sync: Callable[[], None],
    warmup: tuple[int, float],
    barrier: threading.Barrier,
    shared: _Shared,
    tolerate_errors: bool,
    warmed: list[int],
) -> None:
    try:
        warmed.append(_warm_up(request, sync, *warmup, tolerate_errors, records.tid))
        barrier.wait()
        clock = time.perf_counter_ns
        tid = records.tid
        while not shared.stop.is_set():
            drawn = request.draw(tid, -1)  # the next inputs, before the clock starts
            t0, t1, settled, error = send(request, sync, tid, drawn, clock)
            if settled is None:
                if not tolerate_errors:
                    raise error
                records.fail(t0, t0, t1, error)
                shared.check_deadline(t1)  # a stage where all fail still ends on time
                time.sleep(ERROR_BACKOFF_S)
                continue
            records.add(t0, t0, t1, settled)
            shared.record_and_check(t1)
            if settled.think_s > 0:  # a session's user reads the answer (not measured)
                shared.stop.wait(settled.think_s)
    except threading.BrokenBarrierError:
        return  # another client failed during warmup; its error is reported
    except BaseException as exc:  # surfaced to the caller after join
        shared.errors.append(exc)
        shared.finish("error")
        barrier.abort()


@contextlib.contextmanager
def _yielding_gil() -> Iterator[None]:
    """While the coordinator computes, hand the GIL to a waiting client every 50 us rather
    than every 5 ms: a client stamps its completion under the GIL, so a long hold would
    land inside that request's latency."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_S)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


class _Snapshot:
    """The completed requests so far, as arrays grown by only the new part at each check:
    converting Python lists holds the GIL, and a client cannot stamp its completion while
    the coordinator holds it, so a check converts as little as it can."""

    def __init__(self, records: list[Records]) -> None:
        self.records = records
        self.seen = [0] * len(records)
        self.sent: list[list[np.ndarray]] = [[] for _ in records]
        self.done: list[list[np.ndarray]] = [[] for _ in records]

    def update(self) -> tuple[np.ndarray, np.ndarray]:
        """(sent, done) of every ok request recorded so far."""
        for i, r in enumerate(self.records):
            k = len(r.ok)  # appended last: the first k entries of every list are complete
            start, self.seen[i] = self.seen[i], k
            ok = np.asarray(r.ok[start:k], dtype=bool)
            self.sent[i].append(np.asarray(r.sent[start:k], dtype=np.int64)[ok])
            self.done[i].append(np.asarray(r.done[start:k], dtype=np.int64)[ok])
        return (
            np.concatenate([a for parts in self.sent for a in parts]),
            np.concatenate([a for parts in self.done for a in parts]),
        )


def intervals_tight(snapshot: _Snapshot, start_ns: int, scenario: ScenarioConfig) -> bool:
    """Whether every headline interval (P50, P90, P99, throughput) is within ci_target."""
    sent_ns, done_ns = snapshot.update()
    if sent_ns.size == 0:
        return False
    order = np.argsort(sent_ns, kind="stable")  # the row's intervals see this same order
    latency = (done_ns - sent_ns)[order]
    ordered = np.sort(latency)
    for p in stats.CI_PERCENTILES:
        estimate = float(np.percentile(ordered, p, method="inverted_cdf"))
        ranks = stats.serial_quantile_ranks(
            latency, p / 100, scenario.confidence, scenario.windows, ordered
        )
        if stats.relative_half_width(estimate, *ranks.values(ordered)) > scenario.ci_target:
            return False
    window_ns = time.perf_counter_ns() - start_ns
    low, high = stats.rate_interval(
        done_ns - start_ns, window_ns, scenario.confidence, scenario.windows
    )
    rate = done_ns.size / (window_ns / 1e9)
    return stats.relative_half_width(rate, low, high) <= scenario.ci_target


def run_closed_loop(
    request: Request | Callable[[], Sequence[int] | None],
    sync: Callable[[], None],
    threads: int,
    scenario: ScenarioConfig,
    *,
    warmup_s: float | None = None,
    tolerate_errors: bool = False,
) -> LoadResult:
    """Warm up (per client: warmup_requests and at least `warmup_s`, by default the
    scenario's), then measure `threads` closed-loop clients until the stopping rule holds.

    Stops when min_requests and min_duration_s are met and (with ci_target > 0) every headline
    interval is tight, or when max_duration_s has passed; requests in flight then complete and
    count. With `tolerate_errors`, a request that raises is recorded as failed and the client
    goes on; otherwise the first error ends the run and is raised.
    """
    request = as_request(request)
    shared = _Shared(scenario)
    barrier = threading.Barrier(threads, action=shared.open_window)
    records = [Records(tid) for tid in range(threads)]
    warmed: list[int] = []
    workers = [
        threading.Thread(
            target=_client,
            args=(
                records[tid],
                request,
                sync,
                (scenario.warmup_requests, scenario.warmup_s if warmup_s is None else warmup_s),
                barrier,
                shared,
                tolerate_errors,
                warmed,
            ),
            name=f"bench-client-{tid}",
            daemon=True,
        )
        for tid in range(threads)
    ]
    for worker in workers:
        worker.start()
    if shared.wait_for_intervals:
        checked_at, snapshot = 0, _Snapshot(records)
        while not shared.stop.wait(CHECK_INTERVAL_S):
            # Re-check only once the sample has grown by a quarter: each check sorts it all,
            # so checks cost a small multiple of one final pass however long the run.
            if shared.minimums_met.is_set() and shared.count >= CHECK_GROWTH * checked_at:
                checked_at = shared.count
                with _yielding_gil():
                    tight = intervals_tight(snapshot, shared.start_ns, scenario)
                if tight:
                    shared.finish("intervals_tight")
    for worker in workers:
        worker.join()
    if shared.errors:
        raise shared.errors[0]
    return _assemble(records, shared.start_ns, sum(warmed), shared.stop_reason)


def poisson_schedule(rate_per_s: float, duration_s: float, seed: int) -> np.ndarray:
    """Arrival times (ns from 0) of a Poisson process at `rate_per_s` over `duration_s`."""
    rng = np.random.default_rng(seed)
    expected = rate_per_s * duration_s
    draws = int(expected + 6 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.exponential(1.0 / rate_per_s, size=draws))
    return (times[times < duration_s] * 1e9).astype(np.int64)


def run_open_loop(
    request: Request | Callable[[], Sequence[int] | None],
    sync: Callable[[], None],
    threads: int,
    rate_per_s: float,
    scenario: ScenarioConfig,
    seed: int = 0,
    schedule_ns: np.ndarray | None = None,
) -> LoadResult:
    """Poisson arrivals at `rate_per_s` served by up to `threads` requests in flight.

    Arrivals are scheduled over max(min_duration_s, min_requests / rate) seconds (at most
    max_duration_s). A dispatcher thread hands each arrival to a queue at its scheduled time;
    idle clients take from the queue. Latency = completion - scheduled arrival. Arrivals still
    queued half the schedule's length (at least 1 s) after the last one are dropped and
    counted: only an overloaded server leaves any. `schedule_ns` (a trace's arrival offsets)
    replaces the Poisson draw; `rate_per_s` is then the schedule's own mean rate.
    """
    request = as_request(request)
    # drawn by the dispatcher ahead of time, unless the draw itself is heavy and per arrival
    # (a trace builds each prompt from its hash blocks: drawn ahead, it made the dispatcher
    # late by 5-12 ms at P99 against a streaming server)
    ahead = getattr(request, "draws_ahead", True)
    if schedule_ns is not None:
        schedule = np.asarray(schedule_ns, dtype=np.int64)
        duration_s = max(float(schedule[-1]) / 1e9 if schedule.size else 0.0, 1e-3)
    else:
        duration_s = min(
            scenario.max_duration_s,
            max(scenario.min_duration_s, scenario.min_requests / rate_per_s),
        )
        schedule = poisson_schedule(rate_per_s, duration_s, seed)
    arrivals: queue.Queue[tuple[int, int, Any] | None] = queue.Queue()
    records = [Records(tid) for tid in range(threads)]
    lateness = np.zeros(schedule.size, dtype=np.int64)
    shared = _Shared(scenario)
    barrier = threading.Barrier(threads + 1, action=shared.open_window)
    # After the last arrival, queued requests get half the schedule again (at least a second)
    # to be served; what is still waiting then is dropped, counted and flagged.
    deadline_ns = int((duration_s + max(duration_s / 2, 1.0)) * 1e9)
    errors: list[BaseException] = []
    warmed: list[int] = []

    def client(mine: Records) -> None:
        try:
            # failures are results here (recorded below), in warmup too
            warmed.append(
                _warm_up(request, sync, scenario.warmup_requests, scenario.warmup_s, True, mine.tid)
            )
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
            return
        clock = time.perf_counter_ns
        while (item := arrivals.get()) is not None:
            arrival, scheduled, drawn = item
            if clock() - shared.start_ns > deadline_ns:
                continue  # the budget ran out: leave it unsent (counted as dropped)
            if not ahead:  # a trace's record: drawn as it is sent
                drawn = request.draw(mine.tid, arrival)
            t0, t1, settled, error = send(request, sync, mine.tid, drawn, clock)
            if settled is None:
                mine.fail(scheduled, t0, t1, error)
            else:
                mine.add(scheduled, t0, t1, settled)

    workers = [
        threading.Thread(target=client, args=(r,), name=f"bench-client-{r.tid}", daemon=True)
        for r in records
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        for worker in workers:
            worker.join()
        raise errors[0] from None
    start = shared.start_ns
    for k, offset in enumerate(schedule):
        target = start + int(offset)
        # The dispatcher draws each arrival's inputs while it waits for its time, so a client
        # sends the moment it is free: drawn by the client, a waiting request's queueing
        # would carry the draw (measured: 60 us more per request after a 4 ms service).
        drawn = request.draw(-1, k) if ahead else None
        if (wait := target - time.perf_counter_ns()) > 0:
            time.sleep(wait / 1e9)
        lateness[k] = time.perf_counter_ns() - target
        arrivals.put((k, target, drawn))
    for _ in workers:
        arrivals.put(None)
    for worker in workers:
        worker.join()
    result = _assemble(records, start, sum(warmed), "schedule_done")
    result.dropped = int(schedule.size - result.thread.size)
    if result.dropped:
        result.stop_reason = "max_duration"
    result.dispatch_delay_ns = lateness
    result.target_rate_per_s = rate_per_s
    return result
