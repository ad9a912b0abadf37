"""bench.measure.goodput: which requests meet the objectives (TTFT, TPOT, end to end), the
goodput and the shares that meet each, and the token counts a window carried, over a window
whose every request is written out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.config.schema import SloConfig
from bench.measure.goodput import (
    counted_tokens,
    goodput_summary,
    slo_met,
    token_summary,
    tpot_ns,
)
from bench.measure.loadgen import LoadResult

MS = 1_000_000  # ns


def _window(
    e2e_ms: list[float],
    ttft_ms: list[float],
    ok: list[bool],
    window_s: float = 2.0,
    **columns: np.ndarray | dict[str, int],
) -> LoadResult:
    """Requests scheduled at 0 ms, 100 ms, ...; each done e2e_ms later (ttft -1: no token
    times)."""
    n = len(e2e_ms)
    scheduled = np.arange(n, dtype=np.int64) * 100 * MS
    return LoadResult(
        thread=np.zeros(n, dtype=np.int16),
        scheduled_ns=scheduled,
        sent_ns=scheduled,
        done_ns=scheduled + (np.asarray(e2e_ms) * MS).astype(np.int64),
        ttft_ns=np.asarray([t * MS if t >= 0 else -1 for t in ttft_ms], dtype=np.int64),
        ok=np.asarray(ok, dtype=bool),
        token_gaps_ns=np.zeros(0, dtype=np.int64),
        window_s=window_s,
        warmup_n=0,
        stop_reason="targets_met",
        **columns,  # type: ignore[arg-type]
    )


# four requests: fast and ok; slow first token; slow per token; failed
E2E = [100.0, 200.0, 500.0, 50.0]
TTFT = [20.0, 150.0, 30.0, 10.0]
OK = [True, True, True, False]


def test_tpot_is_the_time_after_the_first_token_per_later_token():
    result = _window([100.0, 100.0, 100.0], [20.0, -1.0, 20.0], [True] * 3)
    result.stream_tokens = np.asarray([5, 9, 1], dtype=np.int32)
    per_token = tpot_ns(result, default_tokens=9)
    assert per_token[0] == pytest.approx(80 * MS / 4)  # (100 - 20) ms over 4 later tokens
    assert math.isnan(per_token[1])  # no token times: no TPOT
    assert math.isnan(per_token[2])  # one token: nothing after the first
    # without streamed counts every request is taken to carry the default
    plain = _window([100.0], [20.0], [True])
    assert tpot_ns(plain, default_tokens=5)[0] == pytest.approx(80 * MS / 4)


def test_a_request_meets_the_objectives_only_when_it_completed_and_each_set_one_holds():
    result = _window(E2E, TTFT, OK)
    slo = SloConfig(ttft_ms=100.0, tpot_ms=100.0 / 3, e2e_ms=400.0)
    met, checks = slo_met(result, slo, default_tokens=4)
    assert met.tolist() == [True, False, False, False]
    assert checks["ttft"].tolist() == [True, False, True, False]  # the failed one meets none
    assert checks["tpot"].tolist() == [
        True,
        True,
        False,
        False,
    ]  # a late first token is no slow one
    assert checks["e2e"].tolist() == [True, True, False, False]


def test_an_objective_not_set_is_not_checked():
    met, checks = slo_met(_window(E2E, TTFT, OK), SloConfig(e2e_ms=400.0), default_tokens=4)
    assert list(checks) == ["e2e"] and met.tolist() == [True, True, False, False]


def test_a_ttft_cannot_be_met_by_an_engine_that_does_not_stream():
    result = _window([10.0, 10.0], [-1.0, -1.0], [True, True])
    met, checks = slo_met(result, SloConfig(ttft_ms=1000.0, e2e_ms=1000.0), default_tokens=4)
    assert checks["ttft"].tolist() == [False, False] and not met.any()


def test_goodput_counts_the_requests_meeting_every_objective_per_second():
    columns = goodput_summary(
        _window(E2E, TTFT, OK, window_s=2.0), SloConfig(ttft_ms=100.0, e2e_ms=400.0), 4
    )
    assert columns == {
        "slo": "ttft<=100ms, e2e<=400ms",
        "slo_met_share": 0.25,  # one of four, the failed one counted
        "goodput_per_s": 0.5,  # one request in 2 s
        "slo_ttft_met_share": 0.5,
        "slo_e2e_met_share": 0.5,
    }


def test_no_objectives_or_no_requests_give_no_goodput_columns():
    assert goodput_summary(_window(E2E, TTFT, OK), SloConfig(), 4) == {}
    assert goodput_summary(_window([], [], []), SloConfig(e2e_ms=1.0), 4) == {}
    empty_window = goodput_summary(
        _window([1.0], [0.5], [True], window_s=0.0), SloConfig(e2e_ms=5.0), 4
    )
    assert empty_window["goodput_per_s"] == 0.0 and empty_window["slo_met_share"] == 1.0


def test_token_counts_are_summarised_over_ok_requests_with_known_counts():
    result = _window(
        [10.0, 10.0, 10.0, 10.0],
        [-1.0] * 4,
        [True, True, True, False],
        input_tokens=np.asarray([8, 16, -1, 1000], dtype=np.int32),
        output_tokens_asked=np.asarray([4, 4, 4, 4], dtype=np.int32),
        output_tokens=np.asarray([4, 3, 4, 0], dtype=np.int32),
        token_sources={"usage": 2, "stream": 1},
    )
    columns = token_summary(result)
    # the unknown count (-1) and the failed request's are left out
    assert columns["input_tokens_mean"] == 12.0
    assert (columns["input_tokens_p50"], columns["input_tokens_p99"]) == (8.0, 16.0)
    assert columns["output_tokens_mean"] == pytest.approx(11 / 3)
    assert columns["token_mismatches"] == 1  # asked 4, produced 3
    assert columns["token_source"] == "usage 2, stream 1"  # the most used first
    assert "server_input_tokens_mean" not in columns  # the server said nothing


def test_one_token_source_is_named_alone_and_nothing_known_gives_nothing():
    alone = _window([1.0], [-1.0], [True], token_sources={"engine": 5})
    assert token_summary(alone) == {"token_source": "engine"}
    unknown = _window([1.0], [-1.0], [True], output_tokens=np.asarray([-1], dtype=np.int32))
    assert token_summary(unknown) == {}


def test_a_total_of_tokens_needs_every_ok_requests_count():
    ok = np.asarray([True, True, False])
    assert counted_tokens(np.asarray([3, 4, -1]), ok) == 7  # the failed one's is not needed
    assert counted_tokens(np.asarray([3, -1, 5]), ok) is None
    assert counted_tokens(None, ok) is None
    assert counted_tokens(np.asarray([3, 4, 5]), np.zeros(3, dtype=bool)) is None
