"""bench.measure.admission: the server limits that make requests fail the way a saturated
endpoint's do. Requests here hold their worker until the test lets them go, and each step
waits for the gate's state (a worker taken, a place in line), so the outcomes follow from the
rules, not from how fast the host runs the threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from bench.config.schema import ScenarioConfig
from bench.measure.admission import Admission, RequestRefused, RequestTimedOut, limits_set
from tests.support.bounded import BoomError


def _until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for the gate to reach a state (a guard against a hang, not a bound on time)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the gate never reached the state"
        time.sleep(0.001)


class Held:
    """Requests that keep their worker until `release` is set; the order they were served."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.served: list[int] = []

    def request(self, name: int) -> Callable[[], int]:
        def call() -> int:
            self.served.append(name)
            assert self.release.wait(10), "never released"
            return name

        return call


class Client(threading.Thread):
    """One request through the gate, in a thread of its own; its result or its error."""

    def __init__(self, admission: Admission, call: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.admission, self.call = admission, call
        self.outcome: object = None

    def run(self) -> None:
        try:
            self.outcome = self.admission.run(self.call, lambda: None)
        except (RequestRefused, RequestTimedOut) as exc:
            self.outcome = exc

    def result(self) -> object:
        self.join(10)
        assert not self.is_alive(), "the request never returned"
        return self.outcome


def test_one_worker_serves_in_order_and_refuses_past_the_line():
    admission, held = Admission(workers=1, max_waiting=2, timeout_s=None), Held()
    clients = []
    for name, reached in enumerate(
        (
            lambda: admission.busy == 1,
            lambda: len(admission.line) == 1,
            lambda: len(admission.line) == 2,
        )
    ):
        clients.append(Client(admission, held.request(name)))
        clients[-1].start()
        _until(reached)
    # one served, two waiting: the fourth finds the line full and is refused at once
    with pytest.raises(RequestRefused, match="2 requests already waiting"):
        admission.run(held.request(3), lambda: None)
    held.release.set()
    assert [client.result() for client in clients] == [0, 1, 2]
    assert held.served == [0, 1, 2]  # first come, first served
    assert admission.busy == 0 and not admission.line


def test_waiting_past_the_timeout_fails_and_leaves_the_line():
    admission, held = Admission(workers=1, max_waiting=None, timeout_s=0.05), Held()
    first = Client(admission, held.request(0))
    first.start()
    _until(lambda: admission.busy == 1)
    waiting = Client(admission, held.request(1))
    waiting.start()
    failed = waiting.result()  # it waits out its timeout while the first holds the worker
    assert isinstance(failed, RequestTimedOut) and "while waiting for a worker" in str(failed)
    assert not admission.line and admission.busy == 1 and held.served == [0]
    held.release.set()
    # the first was served, but past its timeout: its client has hung up, so it failed too
    late = first.result()
    assert isinstance(late, RequestTimedOut) and "wait + service took longer" in str(late)
    assert admission.busy == 0


def test_a_slow_request_alone_times_out():
    gate = Admission(workers=None, max_waiting=None, timeout_s=0.05).wrap(
        lambda: time.sleep(0.08), lambda: None
    )
    with pytest.raises(RequestTimedOut):
        gate()


def test_without_workers_there_is_no_line_and_every_request_runs_at_once():
    admission, held = Admission(workers=None, max_waiting=0, timeout_s=None), Held()
    clients = [Client(admission, held.request(n)) for n in range(3)]
    for client in clients:
        client.start()
    _until(lambda: len(held.served) == 3)  # all three in service together
    held.release.set()
    assert [client.result() for client in clients] == [0, 1, 2]
    assert admission.busy == 0 and not admission.line


def test_a_request_that_raises_frees_its_worker_for_the_next():
    admission = Admission(workers=1, max_waiting=0, timeout_s=None)

    def broken() -> int:
        raise BoomError("device lost")

    with pytest.raises(BoomError, match="device lost"):
        admission.run(broken, lambda: None)
    assert admission.busy == 0
    assert admission.run(lambda: 7, lambda: None) == 7  # not refused: the worker is free


def test_the_synchronise_runs_while_the_worker_is_held():
    admission = Admission(workers=1, max_waiting=None, timeout_s=None)
    seen: list[int] = []
    assert admission.run(lambda: 3, lambda: seen.append(admission.busy)) == 3
    assert seen == [1] and admission.busy == 0


def _scenario(**limits: float) -> ScenarioConfig:
    return ScenarioConfig("latency", 1, 10, 1.0, 10.0, **limits)


def test_limits_come_from_the_scenario_and_are_set_when_any_one_is():
    assert not limits_set(_scenario())
    for limit in ({"server_workers": 2}, {"max_waiting": 0}, {"request_timeout_s": 1.5}):
        assert limits_set(_scenario(**limit)), limit
    gate = Admission.of(_scenario(server_workers=2, max_waiting=4, request_timeout_s=1.5))
    assert (gate.workers, gate.max_waiting, gate.timeout_ns) == (2, 4, 1_500_000_000)
