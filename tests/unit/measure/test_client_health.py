"""bench.measure.client_health: a remote engine's row says when the client, not the server,
set the pace (dispatch late, requests waiting for a client thread, the client's CPU), with
the reason and the fix; an in-process engine's says nothing."""

from __future__ import annotations

from bench.measure.client_health import (
    CLIENT_CPU_SHARE,
    CLIENT_QUEUE_MS,
    LATE_DISPATCH_MS,
    client_health,
)


def test_client_health_flags_a_client_that_set_the_pace() -> None:
    fine = {"dispatch_delay_ms_p99": 0.3, "queue_delay_ms_p99": 0.1, "client_cpus_mean": 0.2}
    assert client_health(fine, remote=True) == {
        "client_limited": False,
        "client_limited_reason": None,
    }
    late = client_health({**fine, "dispatch_delay_ms_p99": 9.0, "threads": 4}, remote=True)
    assert late["client_limited"] and "9.0 ms late" in late["client_limited_reason"]
    busy = client_health({**fine, "queue_delay_ms_p99": 40.0, "threads": 4}, remote=True)
    assert "raise threads above 4" in busy["client_limited_reason"]
    cpu = client_health({**fine, "client_cpus_mean": 0.97}, remote=True)
    assert "0.97 CPUs" in cpu["client_limited_reason"]
    assert client_health({**fine, "client_cpus_mean": 0.97}, remote=False) == {}


def test_each_flag_starts_past_its_threshold():
    at_the_line = {
        "dispatch_delay_ms_p99": LATE_DISPATCH_MS,
        "queue_delay_ms_p99": CLIENT_QUEUE_MS,
        "client_cpus_mean": CLIENT_CPU_SHARE - 0.01,
    }
    assert client_health(at_the_line, remote=True)["client_limited"] is False
    # the CPU share counts from the line itself; the delays from just past it
    assert client_health({**at_the_line, "client_cpus_mean": CLIENT_CPU_SHARE}, True)[
        "client_limited"
    ]
    late = {**at_the_line, "dispatch_delay_ms_p99": LATE_DISPATCH_MS + 0.01}
    assert client_health(late, remote=True)["client_limited"]


def test_a_closed_loop_row_without_the_open_loops_figures_is_judged_on_what_it_has():
    assert client_health({}, remote=True) == {
        "client_limited": False,
        "client_limited_reason": None,
    }
    busy = client_health({"client_cpus_mean": 1.4}, remote=True)
    assert busy["client_limited"] and busy["client_limited_reason"].startswith(
        "the client used 1.40 CPUs"
    )


def test_every_reason_is_given_in_one_line():
    row = {
        "dispatch_delay_ms_p99": 5.0,
        "queue_delay_ms_p99": 3.0,
        "client_cpus_mean": 0.9,
        "threads": 2,
    }
    reason = client_health(row, remote=True)["client_limited_reason"]
    assert reason.count("; ") >= 2 and "\n" not in reason
    assert (
        reason.index("5.0 ms late")
        < reason.index("raise threads above 2")
        < reason.index("0.90 CPUs")
    )
