"""The aggregate as CSV and JSON, beside its Parquet file."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bench.results.aggregate_export import EXPORT_FORMATS, export_bytes, write_export
from bench.row.schema import rows_to_table
from bench.store import LocalStore
from tests.unit.results.sweep_store import cell_row

ROWS = [cell_row("s", "a"), cell_row("s", "b", status="failed")]


def test_csv_is_a_header_and_a_line_per_row() -> None:
    lines = list(csv.DictReader(io.StringIO(export_bytes(rows_to_table(ROWS), "csv").decode())))
    assert [line["cell_id"] for line in lines] == ["a", "b"]
    assert lines[0]["status"] == "ok" and lines[1]["error"] == "b broke"


def test_json_is_an_array_of_one_object_per_row_with_iso_timestamps() -> None:
    records = json.loads(export_bytes(rows_to_table(ROWS), "json"))
    assert [r["cell_id"] for r in records] == ["a", "b"]
    assert records[0]["latency_ms_p99"] == 6.0 and records[1]["latency_ms_p99"] is None
    assert records[0]["started_at"].startswith("2025-06-01T12:00:00")


def test_the_export_lies_beside_the_parquet_aggregate(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path))
    assert "csv" in EXPORT_FORMATS and "json" in EXPORT_FORMATS
    uri = write_export(store, "s", rows_to_table(ROWS), "csv")
    assert uri == f"{tmp_path}/s/aggregated.csv"
    assert (tmp_path / "s" / "aggregated.csv").read_text().startswith("schema_version,")
