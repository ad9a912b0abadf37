"""Results on S3 for real, against moto's S3 server on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest

from bench.emulator import aws_env
from bench.plan.grid import plan_from_overrides
from bench.plan.manifest import write_manifest
from bench.store import open_store
from tests.support.faultproxy import fault_proxy

pytestmark = pytest.mark.aws

FAST = [
    "scenario.warmup_requests=1",
    "scenario.warmup_s=0",
    "scenario.min_requests=5",
    "scenario.min_duration_s=0.1",
    "scenario.ci_target=0",
]


def _objects(root: str) -> list[str]:
    bucket = root.removeprefix("s3://").split("/", 1)[0]
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.mark.slow
def test_smoke_sweep_on_s3_and_pandas_reads_it(bench_cli, s3_root: str, models_dir: Path) -> None:
    # Both tiny models, both batch sizes; precision and threads narrowed to keep CI short
    # (the full smoke grid runs against the local store in test_smoke_sweep).
    proc = bench_cli(
        "sweep",
        "+grid=smoke",
        "precision=fp32",
        "threads=1",
        f"store.root={s3_root}",
        f"models_dir={models_dir}",
        "sweep_id=s3smoke",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    frame = pd.read_parquet(f"{s3_root}/s3smoke/aggregated.parquet")
    assert len(frame) == 4 and (frame["status"] == "ok").all()
    assert (frame["latency_ms_p50"] <= frame["latency_ms_p99"]).all()
    keys = _objects(s3_root)
    assert sum("/cells/" in k for k in keys) == 4 and sum("/samples/" in k for k in keys) == 4
    assert any(k.endswith("s3smoke/manifest.json") for k in keys)
    assert f"aggregated: {s3_root}/s3smoke/aggregated.parquet" in proc.stdout


def test_credentials_never_written(bench_cli, s3_root: str, tmp_path: Path) -> None:
    proc = bench_cli("sweep", "engine=null", *FAST, f"store.root={s3_root}", "sweep_id=creds")
    assert proc.returncode == 0, proc.stderr
    env = aws_env(os.environ["AWS_ENDPOINT_URL"])
    secrets = [env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]]
    store = open_store(s3_root)
    for key in _objects(s3_root):
        data = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        for secret in secrets:
            assert secret.encode() not in data, key
    for secret in secrets:
        assert secret not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("root", "env", "expected"),
    [
        ("s3://no-such-bucket-xyz/r", {}, "bucket 'no-such-bucket-xyz' does not exist"),
        ("s3://any-bucket/r", {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "cannot reach"),
    ],
)
def test_unusable_store_is_one_line_and_exit_2(
    bench_cli, s3_root: str, root: str, env: dict[str, str], expected: str
) -> None:
    proc = bench_cli("sweep", "engine=null", f"store.root={root}", env=env)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "store.root" in lines[0]


def test_32_concurrent_writers_all_land(s3_root: str) -> None:
    seeds = ",".join(str(i) for i in range(32))
    plan = plan_from_overrides(
        [
            "engine=null",
            *FAST,
            f"grid.axes.seed=[{seeds}]",
            f"store.root={s3_root}",
            "sweep_id=writers",
        ]
    )
    store = open_store(s3_root)
    manifest = write_manifest(store, plan)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench", "cell", "--manifest", manifest],
            env={**os.environ, "AWS_BATCH_JOB_ARRAY_INDEX": str(i)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(32)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 32, errors
    from bench.results.collect import collect

    collected = collect(store, "writers")
    assert collected.table.num_rows == 32 and not collected.missing and not collected.unreadable
    assert set(collected.table.column("status").to_pylist()) == {"ok"}


def test_transient_s3_errors_are_retried_and_nothing_is_lost(
    bench_cli, s3_root: str, s3_server: str
) -> None:
    with fault_proxy(s3_server, rate=0.3, seed=7) as (proxy, counts):
        proc = bench_cli(
            "sweep",
            "engine=null",
            *FAST,
            "grid.axes.seed=[0,1,2]",  # 3 cells: ~80 S3 calls, 30 % of them failed
            f"store.root={s3_root}",
            "sweep_id=faults",
            env={"AWS_ENDPOINT_URL": proxy},
        )
        collect = bench_cli(
            "collect", "faults", f"store.root={s3_root}", env={"AWS_ENDPOINT_URL": proxy}
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert collect.returncode == 0, collect.stderr[-3000:]
    assert counts.requests > 50 and counts.injected / counts.requests >= 0.2
    assert counts.before > 0 and counts.after > 0
    frame = pd.read_parquet(f"{s3_root}/faults/aggregated.parquet")
    assert len(frame) == 3 and (frame["status"] == "ok").all()


@pytest.mark.slow
def test_s3_checkpoint_is_downloaded_once_and_timed(bench_cli, s3_root, tmp_path) -> None:
    from bench.engines.checkpoints import build_from_config
    from bench.plan.grid import plan_from_overrides as plan

    model = plan(["model=bert_tiny"]).cells[0].model
    local = tmp_path / "ckpt"
    build_from_config(model, local, seed=0)
    bucket = s3_root.split("/")[2]
    s3 = boto3.client("s3")
    for path in local.iterdir():
        s3.upload_file(str(path), bucket, f"checkpoints/bert_tiny/{path.name}")
    args = [
        "run",
        "model=bert_tiny",
        f"model.checkpoint=s3://{bucket}/checkpoints/bert_tiny",
        f"models_dir={tmp_path / 'cache'}",
        "scenario.min_duration_s=0.2",
        "scenario.ci_target=0",
        "format=json",
    ]
    first = json.loads(bench_cli(*args).stdout)
    assert first["status"] == "ok", first
    assert first["download_s"] > 0 and first["load_s"] > 0
    second = json.loads(bench_cli(*args).stdout)
    assert second["status"] == "ok" and "download_s" not in second  # cached: no download


def test_collect_on_s3_reads_every_file_in_one_scan(s3_root: str, monkeypatch) -> None:
    pytest.importorskip("polars")
    import bench.results.collect as collector
    from bench.row.schema import ROW_SCHEMA, SCHEMA_VERSION, rows_to_table
    from bench.store import SweepPaths, open_store

    store, paths = open_store(s3_root), SweepPaths("scan")
    for i in range(3):
        row = {"schema_version": SCHEMA_VERSION, "sweep_id": "scan", "cell_id": f"c{i}"}
        row.update(attempt_id=f"a{i}", cell_index=i, status="ok", n=10 + i)
        store.write_table(paths.attempt_row(f"c{i}", f"a{i}", "ok"), rows_to_table([row]))
    store.write_bytes(paths.attempt_row("c9", "bad", "ok"), b"not parquet")
    slow: list[list[str]] = []
    real = collector.read_chunk
    monkeypatch.setattr(collector, "read_chunk", lambda s, p: slow.append(p) or real(s, p))
    got = collector.collect(store, "scan")
    assert got.table.column("n").to_pylist() == [10, 11, 12]
    assert got.table.schema == ROW_SCHEMA
    assert [path for path, _ in got.unreadable] == [paths.attempt_row("c9", "bad", "ok")]
    # the scan failed on the corrupt file only once; that chunk was read file by file
    assert len(slow) == 1
    store.delete(paths.attempt_row("c9", "bad", "ok"))
    slow.clear()
    assert collector.collect(store, "scan").table.num_rows == 3
    assert slow == []  # a clean bucket: one polars scan through the emulator


def test_ls_lists_the_sweeps_in_a_bucket(s3_root: str) -> None:
    import json

    from bench.plan.history import list_sweeps
    from bench.store import SweepPaths, open_store

    store = open_store(s3_root)
    for name, created in (("old", "2026-01-01T00:00:00+00:00"), ("new", "2026-02-01T00:00:00")):
        manifest = {"sweep_id": name, "grid": "smoke", "created_at": created, "cells": [{}, {}]}
        store.write_bytes(SweepPaths(name).manifest, json.dumps(manifest).encode())
    store.write_bytes("loose/file.txt", b"x")  # a folder without a manifest is not a sweep
    assert store.folders() == ["loose", "new", "old"]
    assert [(s.sweep_id, s.cells) for s in list_sweeps(store)] == [("new", 2), ("old", 2)]


STORE_CALLS = {
    "exists": lambda s: s.exists("a/b.json"),
    "read_bytes": lambda s: s.read_bytes("a/b.json"),
    "write_bytes": lambda s: s.write_bytes("a/b.json", b"{}"),
    "create": lambda s: s.create("a/b.json", b"{}"),
    "replace_if": lambda s: s.replace_if("a/b.json", b"{}", '"etag"'),
    "delete": lambda s: s.delete("a/b.json"),
    "list": lambda s: s.list("a", ".json"),
    "list_versions": lambda s: s.list_versions("a"),
    "has_files": lambda s: s.has_files("a"),
    "folders": lambda s: s.folders(),
}


@pytest.mark.parametrize("call", sorted(STORE_CALLS))
def test_every_store_call_to_an_endpoint_gone_is_one_store_error(call: str, monkeypatch) -> None:
    """Issue 33 item 12: once the retries are spent on an endpoint that does not answer,
    every store call raises StoreError (one line naming the object and that the endpoint is
    unreachable), as a refused one always did; botocore's own error escaped from most
    (a traceback mid-sweep)."""
    from bench.store import StoreError
    from bench.store.s3 import S3Store

    for key, value in aws_env("http://127.0.0.1:9").items():  # the discard port: nobody there
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = S3Store("s3://bucket-gone/r")
    endpoint = "the S3 endpoint http://127.0.0.1:9 is unreachable after 1 try "
    unreachable = r"s3://bucket-gone(/r/a[^ ]*)?: " + re.escape(endpoint)
    with pytest.raises(StoreError, match=unreachable) as gone:
        STORE_CALLS[call](store)
    assert "\n" not in str(gone.value)


def test_aws_max_attempts_sets_the_retry_budget_and_a_bad_one_is_refused(monkeypatch) -> None:
    from bench.config.checks import ConfigError
    from bench.store.s3 import MAX_ATTEMPTS, S3Store

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    assert S3Store("s3://bucket-any/r").client.meta.config.retries["total_max_attempts"] == 3
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    default = S3Store("s3://bucket-any/r").client.meta.config.retries["total_max_attempts"]
    assert default == MAX_ATTEMPTS
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "0")
    with pytest.raises(ConfigError, match=r"AWS_MAX_ATTEMPTS='0'.*whole number"):
        S3Store("s3://bucket-any/r")
