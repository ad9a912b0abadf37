"""Requests that fail, trickle or lie about their tokens, against the OpenAI-compatible test
server on loopback: each was once an `ok` row with honest-looking figures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from bench.cell.runner import run_cell
from bench.results.report import Sla, recommend
from tests.conftest import run_cli
from tests.support.http_cells import http_cell, server_args


@server_args("--first-token-ms", "1", "--token-ms", "0.2", "--fail", "0.5")
def test_failed_requests_are_counted_flagged_and_never_recommended(openai_server: str) -> None:
    row = run_cell(http_cell(openai_server, "engine.check_usage=false")).row
    assert row["status"] == "ok", row.get("error")  # failures are results, not a crash
    sent = row["n"] + row["errors"]
    assert row["errors"] > 0 and row["failed_share"] == pytest.approx(row["errors"] / sent)
    assert 0.3 < row["failed_share"] < 0.7
    assert f"{row['errors']} of {sent} requests failed" in row["percentile_flags"]
    # report: the cheapest row is the one whose half of requests failed; it is not chosen,
    # with a latency target or without one
    dearer = 2 * row["usd_per_million_inferences"]
    clean = {**row, "cell_id": "clean", "failed_share": 0.0, "usd_per_million_inferences": dearer}
    frame = pd.DataFrame([row, clean])
    for target in (Sla(), Sla(p99_ms=1e6)):
        chosen = recommend(frame, target)
        assert len(chosen) == 1
        assert (
            chosen.iloc[0]["usd_per_million_inferences"]
            == frame.iloc[1]["usd_per_million_inferences"]
        )
    lenient = recommend(frame, Sla(max_failed_share=1.0))
    assert lenient.iloc[0]["usd_per_million_inferences"] == row["usd_per_million_inferences"]


@server_args("--first-token-ms", "1", "--token-ms", "0.2", "--hang", "0.25", "--hang-s", "3")
def test_timed_out_requests_are_in_the_failed_share(openai_server: str) -> None:
    row = run_cell(
        http_cell(openai_server, "scenario.request_timeout_s=0.5", "engine.check_usage=false")
    ).row
    assert row["status"] == "ok" and row["errors"] > 0, row.get("error")
    assert "RequestTimeout" in row["request_errors"] and row["failed_share"] > 0.05


@server_args("--first-token-ms", "10", "--token-ms", "300")
def test_a_trickling_stream_fails_at_its_request_timeout_not_per_read(
    openai_server: str,
) -> None:
    """8 tokens 300 ms apart: every read returns within the 1 s timeout, the request takes
    2.1 s. The deadline is the request's."""
    row = run_cell(
        http_cell(
            openai_server,
            "scenario.request_timeout_s=1",
            "scenario.warmup_requests=0",
            "scenario.min_requests=2",
            "scenario.max_duration_s=3",
        )
    ).row
    assert not row.get("n") or row["latency_ms_max"] <= 1100, row["latency_ms_max"]
    assert "RequestTimeout" in (row.get("request_errors") or row.get("error") or "")


@pytest.mark.parametrize(
    ("openai_server", "said"),
    [
        (
            ["--first-token-ms", "1", "--token-ms", "0.2", "--stream-tokens", "2", "--no-usage"],
            "generated 2 tokens (stream), 8 were asked",
        ),
        (
            ["--first-token-ms", "1", "--token-ms", "0.2", "--extra-tokens", "3"],
            "generated 11 tokens (usage), 8 were asked",
        ),
        (
            ["--first-token-ms", "1", "--stream-tokens", "2", "--usage-says-asked"],
            "the stream carried 2 chunks",
        ),
    ],
    ids=["short-without-usage", "more-than-asked", "usage-claims-the-asked-count"],
    indirect=["openai_server"],
)
def test_a_token_count_is_always_checked_against_the_stream(openai_server: str, said: str) -> None:
    row = run_cell(http_cell(openai_server, "scenario.max_duration_s=2")).row
    text = row.get("request_errors") or row.get("error") or ""
    assert said in text, text
    assert not row.get("n")  # not one request's tokens counted as produced


SECRET = "sk-user-key-4242424242"


def _texts(root: Path) -> Iterator[tuple[Path, str]]:
    """Every file under `root` as text: Parquet decoded (its pages are compressed), the rest
    as bytes."""
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            yield path, pq.read_table(path).to_pandas().to_csv()
        else:
            yield path, path.read_bytes().decode(errors="replace")


@server_args("--require-token", "the-right-token", "--echo-auth")
def test_a_401_that_echoes_the_bearer_token_leaks_it_nowhere(
    openai_server: str, tmp_path: Path
) -> None:
    proc = run_cli(
        [
            "sweep",
            "model=opt_tiny",
            "engine=http",
            f"engine.url={openai_server}",
            "engine.api_key_env=BENCH_TEST_BEARER",  # a name that does not say "token"
            "scenario.min_duration_s=1",
            "scenario.max_duration_s=2",
            "scenario.min_requests=5",
            "sweep_id=leak",
        ],
        tmp_path,
        env={"BENCH_TEST_BEARER": SECRET},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]  # every request refused: a failed row
    assert "HTTP 401" in proc.stdout + proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    for command in (["collect", "leak"], ["status", "leak"]):
        shown = run_cli(command, tmp_path, env={"BENCH_TEST_BEARER": SECRET})
        assert SECRET not in shown.stdout + shown.stderr, command
    files = list(_texts(tmp_path / "results"))
    assert any(p.name == "aggregated.parquet" for p, _ in files)
    assert any("HTTP 401" in text for _, text in files)
    leaked = [str(p) for p, text in files if SECRET in text]
    assert not leaked, leaked
