"""cells/*.parquet -> aggregated.parquet: one row per cell, tidy dtypes.

Reads the cell files in parallel (a thread pool; pyarrow releases the GIL while decoding),
casts each to the current row schema (older files get the newer columns as nulls), keeps one
row per cell (an ok row over any other, then the latest), and names the cells the manifest
lists that have no row. An unreadable file is reported by name and skipped (strict: fatal).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from bench.rows import ROW_SCHEMA, conform
from bench.store import Store, SweepPaths

READ_WORKERS = 16
NOT_OK_FAILURES = ("failed", "timeout")


@dataclass
class Collected:
    table: pa.Table
    expected: list[str]  # cell ids in the manifest (empty when there is none)
    missing: list[str]  # in the manifest, no row
    failed: list[str]  # status failed or timeout
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, error)


class UnreadableCellFile(RuntimeError):
    pass


def _read(store: Store, path: str) -> pa.Table | Exception:
    try:
        return conform(store.read_table(path))
    except Exception as exc:  # reported per file; one bad file must not sink the collection
        return exc


def _latest_per_cell(table: pa.Table) -> pa.Table:
    """One row per cell_id: prefer status ok, then the latest finished_at."""
    ids = table.column("cell_id").to_pylist()
    statuses = table.column("status").to_pylist()
    finished = table.column("finished_at").to_pylist()
    best: dict[str, tuple[tuple[bool, object], int]] = {}
    for i, (cell_id, status, when) in enumerate(zip(ids, statuses, finished, strict=True)):
        key = (status == "ok", when.timestamp() if when is not None else float("-inf"))
        if cell_id not in best or key > best[cell_id][0]:
            best[cell_id] = (key, i)
    keep = sorted(i for _, i in best.values())
    return table.take(pa.array(keep, type=pa.int64()))


def _expected_cells(store: Store, sweep_id: str) -> list[str]:
    paths = SweepPaths(sweep_id)
    if not store.exists(paths.manifest):
        return []
    manifest = json.loads(store.read_bytes(paths.manifest))
    return [cell["cell_id"] for cell in manifest["cells"]]


def collect(store: Store, sweep_id: str, strict: bool = False) -> Collected:
    """Aggregate a sweep's cell rows and write `<sweep_id>/aggregated.parquet`."""
    paths = SweepPaths(sweep_id)
    files = store.list(paths.cells_dir, ".parquet")
    with ThreadPoolExecutor(max_workers=READ_WORKERS) as pool:
        results = list(pool.map(lambda p: _read(store, p), files))
    tables, unreadable = [], []
    for path, result in zip(files, results, strict=True):
        if isinstance(result, Exception):
            unreadable.append((path, f"{type(result).__name__}: {result}"))
        else:
            tables.append(result)
    if unreadable and strict:
        path, error = unreadable[0]
        raise UnreadableCellFile(f"{store.uri(path)}: {error}")
    table = pa.concat_tables(tables) if tables else ROW_SCHEMA.empty_table()
    table = _latest_per_cell(table)
    table = table.sort_by([("cell_index", "ascending"), ("cell_id", "ascending")])
    store.write_table(paths.aggregated, table)

    expected = _expected_cells(store, sweep_id)
    present = set(table.column("cell_id").to_pylist())
    statuses = zip(
        table.column("cell_id").to_pylist(), table.column("status").to_pylist(), strict=True
    )
    return Collected(
        table=table,
        expected=expected,
        missing=[cell_id for cell_id in expected if cell_id not in present],
        failed=[cell_id for cell_id, status in statuses if status in NOT_OK_FAILURES],
        unreadable=unreadable,
    )


SUMMARY_COLUMNS = {
    "model": "model",
    "engine": "engine",
    "precision": "prec",
    "batch_size": "batch",
    "threads": "thr",
    "instance": "instance",
    "status": "status",
    "n": "n",
    "latency_ms_p50": "p50_ms",
    "latency_ms_p99": "p99_ms",
    "inferences_per_s": "inf/s",
    "usd_per_million_inferences": "$/M inf",
}


def summary_text(collected: Collected) -> str:
    """A compact table of the aggregate plus lines naming missing, failed, unreadable cells."""
    frame = collected.table.select(list(SUMMARY_COLUMNS)).to_pandas()
    frame = frame.rename(columns=SUMMARY_COLUMNS)
    lines = [frame.to_string(index=False, float_format=lambda v: f"{v:.4g}")]
    for cell_id in collected.failed:
        error = collected.table.filter(pc.equal(collected.table["cell_id"], cell_id))
        message = (error.column("error")[0].as_py() or "")[:200]
        lines.append(f"failed: {cell_id}: {message}")
    lines += [f"missing: {cell_id} (in the manifest, no row)" for cell_id in collected.missing]
    lines += [f"unreadable, skipped: {path}: {error}" for path, error in collected.unreadable]
    return "\n".join(lines)
