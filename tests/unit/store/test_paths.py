"""bench.store.paths: where each of a sweep's files lives, what a row file's name says, the
manifest read as plain JSON (and refused in one line when it is not), and which row files an
earlier collect read unchanged."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench.store import LocalStore, RowFile, StoreError, SweepPaths, manifest_json, row_file
from bench.store.paths import FILE_COLUMN, VERSION_COLUMN, collected_files


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(str(tmp_path))


def test_sweep_paths():
    paths = SweepPaths("run-1")
    assert paths.manifest == "run-1/manifest.json"
    assert paths.cells_dir == "run-1/cells"
    assert paths.attempt_row("c1", "a1", "ok") == "run-1/cells/c1/a1.ok.parquet"
    assert paths.legacy_cell("c1") == "run-1/cells/c1.parquet"
    assert paths.samples("c1", "a1") == "run-1/samples/c1/a1.parquet"
    assert paths.log("c1", "a1") == "run-1/logs/c1/a1.log"
    assert paths.lease("c1") == "run-1/leases/c1.json"
    assert paths.aggregated == "run-1/aggregated.parquet"


def test_every_file_of_a_sweep_lies_in_its_own_folder():
    paths = SweepPaths("run-1")
    assert paths.collected_rows == "run-1/collected/attempts.parquet"
    assert paths.cell_attempts_dir("c1") == "run-1/cells/c1"
    assert paths.telemetry("c1", "a1") == "run-1/telemetry/c1/a1.parquet"
    assert paths.progress("c1") == f"{paths.progress_dir}/c1.json" == "run-1/progress/c1.json"
    assert paths.submission("arr") == f"{paths.submissions_dir}/arr.json"
    assert paths.array_map("arr") == "run-1/arrays/arr.json"
    assert paths.report_dir == "run-1/report"
    assert paths.leases_dir == "run-1/leases"


def test_row_file_reads_both_layouts():
    # cell ids carry dots (an instance type); attempt ids never do
    attempt = row_file("run-1/cells/bert-g5.xlarge-ab12/9f3e.timeout.parquet")
    assert attempt == RowFile("bert-g5.xlarge-ab12", "9f3e", "timeout")
    assert row_file("run-1/cells/bert-g5.xlarge-ab12.parquet") == RowFile(
        "bert-g5.xlarge-ab12", None, None
    )


def test_a_row_file_written_where_paths_put_it_reads_back_as_its_parts():
    written = SweepPaths("s").attempt_row("m-hf-fp32-b1-t1-tp1-g5.xlarge-0a1b", "f00d", "failed")
    assert row_file(written) == RowFile("m-hf-fp32-b1-t1-tp1-g5.xlarge-0a1b", "f00d", "failed")
    # a relative path without the store's prefix reads the same
    assert row_file("cells/c/a.ok.parquet") == RowFile("c", "a", "ok")


def test_a_sweep_without_a_manifest_has_none(store):
    assert manifest_json(store, "nothing-here") is None


def test_the_manifest_is_read_as_plain_json(store):
    manifest = {"sweep_id": "s", "cells": [{"cell_id": "a"}]}
    store.write_bytes(SweepPaths("s").manifest, json.dumps(manifest).encode())
    assert manifest_json(store, "s") == manifest


def test_a_torn_manifest_is_one_line_saying_how_to_go_on(store):
    store.write_bytes(SweepPaths("s").manifest, b'{"sweep_id": "s", "cel')
    with pytest.raises(StoreError) as info:
        manifest_json(store, "s")
    message = str(info.value)
    assert message.startswith(f"{store.uri('s/manifest.json')} is not a readable manifest (")
    assert "move it aside and run the same sweep again" in message and "\n" not in message


def test_json_that_is_no_object_is_not_a_manifest(store):
    store.write_bytes(SweepPaths("s").manifest, b"[1, 2]")
    with pytest.raises(StoreError, match=r"manifest.json is not a manifest \(a JSON object\)"):
        manifest_json(store, "s")


def _cache(store: LocalStore, files: list[str], versions: list[str]) -> None:
    table = pa.table({FILE_COLUMN: files, VERSION_COLUMN: versions, "status": ["ok"] * len(files)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    store.write_bytes(SweepPaths("s").collected_rows, buffer.getvalue())


def test_collected_files_are_those_cached_at_their_current_version(store):
    _cache(store, ["s/cells/a/1.ok.parquet", "s/cells/b/2.ok.parquet"], ["10:1", "10:2"])
    listing = {
        "s/cells/a/1.ok.parquet": "10:1",  # unchanged since the collect
        "s/cells/b/2.ok.parquet": "12:9",  # rewritten since
        "s/cells/c/3.ok.parquet": "10:3",  # new
    }
    assert collected_files(store, "s", listing) == {"s/cells/a/1.ok.parquet"}


def test_without_a_readable_cache_no_file_counts_as_read(store):
    listing = {"s/cells/a/1.ok.parquet": "10:1"}
    assert collected_files(store, "s", listing) == set()
    store.write_bytes(SweepPaths("s").collected_rows, b"PAR1 torn")
    assert collected_files(store, "s", listing) == set()
