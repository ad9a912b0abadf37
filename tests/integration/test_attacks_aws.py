"""Attacks on the AWS paths, reproduced against moto's S3 and Batch servers on loopback behind a
proxy that loses answers on demand: a SubmitJob whose answer never arrives (the job landed), a
Batch endpoint that drops every connection, and an S3 outage that outlasts the retry budget in
the middle of a sweep."""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pandas as pd
import pytest

from bench.executors.base import SubmissionFailed, read_submissions
from bench.store import open_store
from tests.integration.test_aws_batch import IMAGE, StillQueued, _parents

pytestmark = pytest.mark.aws

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}
Rule = Callable[[str, str], bool]  # (method, path) -> whether the rule applies


def never(method: str, path: str) -> bool:
    return False


class LosingProxy:
    """What the proxy does to each request, changeable while it runs:
    - `lose(method, path)`: forward it (the server acts on it), then close the connection
      without an answer: the client sees a dropped connection, as when an answer is lost;
    - `refuse(method, path)`: close the connection without forwarding (an outage);
    - `outage_after(method, path)`: forward it and answer, then refuse everything after it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.lose: Rule = never
        self.refuse: Rule = never
        self.outage_after: Rule = never
        self.down = False
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str]] = []

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        method, path = handler.command, handler.path
        with self.lock:
            self.seen.append((method, path))
            refused = self.down or self.refuse(method, path)
        if refused:
            handler.close_connection = True  # no answer at all
            return
        status, headers, data = self._forward(handler, body)
        if self.lose(method, path):
            handler.close_connection = True  # the server did the work; the answer is lost
            return
        with self.lock:
            self.down = self.down or self.outage_after(method, path)
        handler.send_response(status)
        for key, value in headers:
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def _forward(
        self, handler: BaseHTTPRequestHandler, body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        conn.request(handler.command, handler.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, response.getheaders(), data

    def count(self, method: str, fragment: str) -> int:
        with self.lock:
            return sum(m == method and fragment in p for m, p in self.seen)


@contextmanager
def losing_proxy(upstream: str) -> Iterator[tuple[str, LosingProxy]]:
    """A LosingProxy on a free loopback port in front of `upstream`; yields (url, proxy)."""
    proxy = LosingProxy(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _any(self) -> None:
            proxy.handle(self)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", proxy
    finally:
        server.shutdown()
        server.server_close()


def submit_job(method: str, path: str) -> bool:
    return method == "POST" and path.startswith("/v1/submitjob")


def list_jobs(method: str, path: str) -> bool:
    return method == "POST" and path.startswith("/v1/listjobs")


@pytest.fixture
def batch_proxy(s3_server, batch_queues, monkeypatch) -> Iterator[LosingProxy]:
    """Batch calls (only they) through a LosingProxy; jobs read RUNNABLE (StillQueued), as
    real ones do while their instances start; two attempts per botocore call keep it short."""
    from bench.executors.aws_batch import AwsBatchExecutor

    with losing_proxy(s3_server) as (url, proxy):
        monkeypatch.setenv("AWS_ENDPOINT_URL_BATCH", url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
        real = boto3.client("batch")
        monkeypatch.setattr(AwsBatchExecutor, "client", property(lambda self: StillQueued(real)))
        yield proxy


ONE_QUEUE = [
    "engine=null",
    "grid.axes.instance=[g5.xlarge]",
    "grid.axes.threads=[1,2]",
    "executor=aws_batch",
    f"executor.image={IMAGE}",
]


def _sweep(s3_root: str, *extra: str) -> None:
    from bench.plan.grid import plan_from_overrides
    from bench.sweep import run_sweep

    run_sweep(plan_from_overrides([*ONE_QUEUE, f"store.root={s3_root}", *extra]))


def test_a_lost_submit_answer_is_looked_up_and_adopted_not_submitted_again(
    s3_root, batch_queues, batch_proxy, capsys
):
    """Issue 33 item 6: every SubmitJob answer lost. botocore retried the call and Batch held
    five copies of the array while the journal said UNCONFIRMED; now one lands and is adopted."""
    batch_proxy.lose = submit_job
    _sweep(s3_root, "sweep_id=lostanswer")
    assert len(_parents(batch_queues, "lostanswer")) == 1
    assert batch_proxy.count("POST", "/v1/submitjob") == 1  # no retry that could land twice
    journaled = read_submissions(open_store(s3_root), "lostanswer")
    assert [bool(s.job_id) for s in journaled] == [True]  # confirmed by the lookup
    assert "submitted " in capsys.readouterr().err


def test_an_unconfirmed_submission_is_looked_up_before_resubmitting(
    s3_root, batch_queues, batch_proxy, capsys
):
    """Issue 33 item 6: the answer lost and the lookup unanswered too, the journal says
    UNCONFIRMED; running the sweep again must find the array that landed, not add another."""
    batch_proxy.lose = submit_job
    batch_proxy.refuse = list_jobs
    with pytest.raises(SubmissionFailed, match="UNCONFIRMED"):
        _sweep(s3_root, "sweep_id=unconfirmed")
    batch_proxy.lose = batch_proxy.refuse = never  # Batch answers again
    assert len(_parents(batch_queues, "unconfirmed")) == 1
    assert [s.job_id for s in read_submissions(open_store(s3_root), "unconfirmed")] == [""]
    capsys.readouterr()
    _sweep(s3_root, "sweep_id=unconfirmed")
    err = capsys.readouterr().err
    assert "2 cells are in submissions still queued or running" in err
    assert len(_parents(batch_queues, "unconfirmed")) == 1  # nothing submitted again
    (adopted,) = read_submissions(open_store(s3_root), "unconfirmed")
    assert adopted.job_id in _parents(batch_queues, "unconfirmed")  # the journal says so now


def test_a_batch_endpoint_that_drops_connections_is_one_line_and_exit_2(
    bench_cli, s3_root, batch_queues, s3_server
):
    """Issue 33 item 11: a dropped connection has no error response; the error path read one
    anyway (AttributeError, a traceback and exit 1)."""
    with losing_proxy(s3_server) as (url, proxy):
        proxy.down = True
        proc = bench_cli(
            *["sweep", *ONE_QUEUE, f"store.root={s3_root}", "sweep_id=dropped"],
            env={"AWS_ENDPOINT_URL_BATCH": url, "AWS_MAX_ATTEMPTS": "2"},
        )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot list AWS Batch job queues" in lines[0], proc.stderr
    assert "ConnectionClosedError" in lines[0] and "Traceback" not in proc.stderr


FAST = [
    "engine=null",
    "grid.axes.seed=[0,1]",
    "scenario.warmup_requests=1",
    "scenario.warmup_s=0",
    "scenario.min_requests=5",
    "scenario.min_duration_s=0.1",
    "scenario.ci_target=0",
]


def cell_row_put(method: str, path: str) -> bool:
    return method == "PUT" and "/cells/" in path


def test_an_s3_outage_past_the_retry_budget_is_one_line_exit_2_and_resume_works(
    bench_cli, s3_root, s3_server
):
    """Issue 33 item 12: S3 goes away right after the first cell's row is written and stays
    away past the retry budget. Giving the lease back failed with a 100-line traceback and
    exit 1 (read as "a cell failed"); now the lease is left to expire, in one line, and the
    sweep stops in one line naming the store, exit 2. Once S3 is back, the same command
    resumes: the first cell is kept, the second runs."""
    args = ["sweep", *FAST, f"store.root={s3_root}", "sweep_id=outage"]
    with losing_proxy(s3_server) as (url, proxy):
        env = {"AWS_ENDPOINT_URL": url, "AWS_MAX_ATTEMPTS": "2"}
        proxy.outage_after = cell_row_put
        proc = bench_cli(*args, env=env)
        assert proxy.down  # the outage happened
        proxy.down, proxy.outage_after = False, never  # S3 is back
        again = bench_cli(*args, env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "unreachable" in errors[0] and "resume" in errors[0], proc.stderr
    released = [line for line in proc.stderr.splitlines() if "lease" in line]
    assert released and all("expires on its own" in line for line in released), proc.stderr
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 to run, 1 already ok" in again.stderr
    frame = pd.read_parquet(f"{s3_root}/outage/aggregated.parquet")
    assert len(frame) == 2 and (frame["status"] == "ok").all()
