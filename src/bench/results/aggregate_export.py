"""The aggregate in the formats tools without Parquet read: `collect format=csv` writes
aggregated.csv (a header, one line per row), `format=json` aggregated.json (an array of one
object per row, timestamps as ISO 8601), beside aggregated.parquet."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from bench.store import Store, SweepPaths

if TYPE_CHECKING:
    import pyarrow as pa

EXPORT_FORMATS = ("table", "csv", "json")  # table: the Parquet aggregate alone


def export_bytes(table: pa.Table, export: str) -> bytes:
    """The aggregate as CSV or JSON (`export`: "csv" or "json")."""
    import polars as pl

    frame = pl.from_arrow(table)
    buffer = io.BytesIO()
    if export == "csv":
        frame.write_csv(buffer)
    else:
        frame.write_json(buffer)
    return buffer.getvalue()


def write_export(store: Store, sweep_id: str, table: pa.Table, export: str) -> str:
    """Write the aggregate as aggregated.<export> beside aggregated.parquet: its URI."""
    out = SweepPaths(sweep_id).aggregated.removesuffix(".parquet") + f".{export}"
    store.write_bytes(out, export_bytes(table, export))
    return store.uri(out)
