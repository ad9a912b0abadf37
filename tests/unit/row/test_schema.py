"""bench.row.schema: rows to a table of the one row schema (unknown columns refused, secrets
masked, no pandas in the process), and a table of any earlier schema version cast to the
current one."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pytest

from bench.config.secrets import MASK
from bench.row.schema import (
    AXIS_COLUMNS,
    COLUMN_NAMES,
    COLUMNS,
    ROW_SCHEMA,
    SAMPLES_SCHEMA,
    conform,
    rows_to_table,
)


def test_a_row_table_round_trips_and_the_process_never_imports_pandas() -> None:
    row = {"cell_id": "c", "status": "ok", "n": 3, "latency_ms_p50": 1.25, "host_busy": False}
    table = rows_to_table([row])
    assert table.schema.equals(ROW_SCHEMA)
    assert table.to_pylist()[0]["latency_ms_p50"] == 1.25
    assert table.column("error").null_count == 1
    code = (
        "import sys; from bench.row.schema import rows_to_table; "
        "rows_to_table([{'cell_id': 'c', 'n': 1}]); print('pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_rows_to_table_rejects_unknown_columns():
    with pytest.raises(KeyError, match="colour"):
        rows_to_table([{"cell_id": "a", "colour": "red"}])


def test_a_secret_an_error_echoes_is_masked_in_the_table():
    error = "401 from http://u:hunter22@127.0.0.1:9/v1: Authorization: Bearer sk-abcdef123456"
    (row,) = rows_to_table([{"cell_id": "a", "status": "failed", "error": error}]).to_pylist()
    assert "hunter22" not in row["error"] and "sk-abcdef123456" not in row["error"]
    assert row["error"].startswith(f"401 from http://{MASK}@127.0.0.1:9/v1")
    assert row["cell_id"] == "a"  # text without a secret is kept as it was


def test_every_column_is_declared_once_with_its_meaning():
    names = [name for name, _, _ in COLUMNS]
    assert len(names) == len(set(names)) == len(ROW_SCHEMA) == len(COLUMN_NAMES)
    assert all(meaning.strip() for _, _, meaning in COLUMNS)
    assert set(AXIS_COLUMNS) <= COLUMN_NAMES
    assert {"cell_id", "status", "attempt_id", "schema_version"} <= COLUMN_NAMES
    assert "latency_ns" in SAMPLES_SCHEMA.names and "latency_ns" not in COLUMN_NAMES


def test_conform_adds_missing_columns_as_nulls():
    table = pa.table({"cell_id": ["a"], "n": pa.array([3], pa.int32())})
    conformed = conform(table)
    assert conformed.schema == ROW_SCHEMA
    assert conformed.column("n").type == pa.int64()
    assert conformed.column("n").to_pylist() == [3]
    assert conformed.column("status").to_pylist() == [None]


def test_a_table_of_the_current_schema_is_returned_as_it_is():
    table = rows_to_table([{"cell_id": "a"}])
    assert conform(table) is table


def test_a_file_from_before_version_9_reads_with_todays_names():
    """Schema 9 renamed verdict to stability and moved a capacity row's memory trace out of
    stages_json, which is now the ramp's alone."""
    old = pa.table(
        {
            "cell_id": ["ramp", "capacity"],
            "scenario": ["ramp", "capacity"],
            "verdict": ["stable", "drifting"],
            "verdict_reason": [None, "P50 rose 12 %"],
            "stages_json": ['[{"concurrency": 1}]', '[{"copies": 2}]'],
        }
    )
    rows = conform(old).to_pylist()
    assert [r["stability"] for r in rows] == ["stable", "drifting"]
    assert rows[1]["stability_reason"] == "P50 rose 12 %"
    assert [r["stages_json"] for r in rows] == ['[{"concurrency": 1}]', None]
    assert [r["memory_trace_json"] for r in rows] == [None, '[{"copies": 2}]']
