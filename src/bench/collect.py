"""cells/<cell_id>/<attempt>.<status>.parquet -> aggregated.parquet: one row per cell.

Scale: a one-row file of ~140 columns is nearly all metadata, and decoding it is the cost of
a 10,000-cell sweep. The files are read by polars, many per scan (its Parquet reader decodes such
files ~3x faster than pyarrow's and spreads them over the CPUs; on S3 its own client overlaps
the GETs, given the endpoint and credentials boto3 resolved), cast to the row schema as it
reads; a chunk it cannot read in one go (a corrupt or foreign file, an older column type it
will not widen, a failed GET) is read file by file through the store, so the bad file is
named. Without polars, files are read file by file by worker processes (one per CPU), each
with a few I/O threads to overlap S3 round trips, returning one compact table per chunk.

Each file is cast to the current row schema (older files get the newer columns as nulls); one
row per cell is kept, its best attempt (an ok row over any other, then the latest), and the
other attempts are listed; cells the manifest lists with no row are named. A file that cannot
be read, or is not a bench row file (no schema_version and identity columns), is reported by
name and skipped (strict: fatal). Files of the older one-row-per-cell layout
(`cells/<cell_id>.parquet`) collect the same way.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from bench.rows import ROW_SCHEMA, conform
from bench.store import Store, SweepPaths, open_store

CHUNK_FILES = 500
SCAN_FILES = 2000  # files per polars scan: one bad file sends this many down the slow path
FILE_COLUMN = "__bench_file"
VERSION_COLUMN = "__bench_file_version"
NOT_OK_FAILURES = ("failed", "timeout")
# What makes a Parquet file a bench row file: a schema version and the columns a row is
# identified and judged by. Anything else in cells/ is somebody else's file.
REQUIRED_COLUMNS = ("schema_version", "sweep_id", "cell_id", "status")
MAX_ATTEMPT_LINES = 20


@dataclass
class Collected:
    table: pa.Table
    expected: list[str]  # cell ids in the manifest (empty when there is none)
    missing: list[str]  # in the manifest, no row
    failed: list[str]  # status failed or timeout
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, error)
    # attempts that are not their cell's row in the aggregate: (cell_id, attempt_id, status)
    superseded: list[tuple[str, str, str]] = field(default_factory=list)


class UnreadableCellFile(RuntimeError):
    pass


class ForeignFile(ValueError):
    """A readable Parquet file that is not a bench row file."""


def _read(store: Store, path: str) -> pa.Table | Exception:
    try:
        table = store.read_table(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise ForeignFile(f"not a bench row file (no {', '.join(missing)} column)")
        if table.num_rows and table.column("cell_id").null_count:
            raise ForeignFile("not a bench row file (a row without a cell_id)")
        return conform(table)
    except Exception as exc:  # reported per file; one bad file must not sink the collection
        return exc


ChunkResult = tuple[pa.Table | None, list[tuple[str, str]]]


@functools.cache
def _worker_store(root: str) -> Store:
    """One store (and S3 client) per worker process, made after the fork."""
    return open_store(root)


def read_chunk(store: Store, paths: list[str]) -> ChunkResult:
    """Read `paths` into one table (a single chunk per column) plus (path, error) failures."""
    tables, unreadable = [], []
    if store.io_threads > 1:  # remote: overlap the round trips
        with ThreadPoolExecutor(max_workers=store.io_threads) as pool:
            results = list(pool.map(lambda p: _read(store, p), paths))
    else:  # local: a thread hand-off per file would cost more than the read
        results = [_read(store, p) for p in paths]
    for path, result in zip(paths, results, strict=True):
        if isinstance(result, Exception):
            unreadable.append((path, f"{type(result).__name__}: {result}"))
        else:
            tables.append(_with_files(result, [path] * result.num_rows))
    table = pa.concat_tables(tables).combine_chunks() if tables else None
    return table, unreadable


def _with_files(table: pa.Table, files: list[str]) -> pa.Table:
    """A conformed table with the file each row came from (the collected-rows cache's key)."""
    return table.append_column(FILE_COLUMN, pa.array(files, pa.string()))


def _read_chunk_in_worker(root: str, paths: list[str]) -> ChunkResult:
    return read_chunk(_worker_store(root), paths)


@functools.cache
def _polars_row_schema() -> Any:
    """The row schema in polars' types, mapped by hand: `pl.from_arrow` would import pandas
    (0.4 s of a cold collect)."""
    import polars as pl

    simple = {
        pa.float64(): pl.Float64,
        pa.string(): pl.String,
        pa.int16(): pl.Int16,
        pa.int32(): pl.Int32,
        pa.int64(): pl.Int64,
        pa.bool_(): pl.Boolean,
    }

    def polars_type(arrow: pa.DataType) -> Any:
        if pa.types.is_timestamp(arrow):
            return pl.Datetime(arrow.unit, arrow.tz)
        if arrow not in simple:
            raise TypeError(f"no polars type for the row column type {arrow}")
        return simple[arrow]

    return pl.Schema({f.name: polars_type(f.type) for f in ROW_SCHEMA})


def _scan_chunk(store: Store, paths: list[str]) -> ChunkResult:
    """One polars scan of `paths` (local files or S3 keys), or file by file where it fails."""
    import polars as pl

    by_uri = {store.uri(p): p for p in paths}
    try:
        frame = pl.scan_parquet(
            list(by_uri),
            storage_options=store.scan_options(),
            schema=_polars_row_schema(),
            missing_columns="insert",  # an older file: the newer columns are null
            extra_columns="ignore",
            cast_options=pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast"),
            include_file_paths=FILE_COLUMN,
            glob=False,
            hive_partitioning=False,
        ).collect()
    except Exception:  # any failure: the per-file path says which file and why
        return read_chunk(store, paths)
    table = frame.rechunk().to_arrow()  # one chunk per column, not one per file
    # A file without bench's identity columns reads as rows of nulls: re-read those alone
    # so they are named (and skipped) as the per-file path would.
    identity = functools.reduce(pc.and_, [pc.is_valid(table[c]) for c in REQUIRED_COLUMNS])
    suspect = sorted(set(table.filter(pc.invert(identity))[FILE_COLUMN].to_pylist()))
    good = table.filter(pc.invert(pc.is_in(table[FILE_COLUMN], pa.array(suspect, pa.string()))))
    rest, unreadable = read_chunk(store, [by_uri[u] for u in suspect]) if suspect else (None, [])
    files = [by_uri[u] for u in good[FILE_COLUMN].to_pylist()]
    parts = [_with_files(conform(good), files)] + ([rest] if rest is not None else [])
    return pa.concat_tables(parts).combine_chunks(), unreadable


def _polars() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


def _read_all(store: Store, files: list[str]) -> list[ChunkResult]:
    if _polars():
        # polars spreads one scan over the CPUs (and S3 GETs) itself; no worker processes
        # (forking after polars has started its threads is unsafe anyway)
        return [
            _scan_chunk(store, files[i : i + SCAN_FILES]) for i in range(0, len(files), SCAN_FILES)
        ]
    chunks = [files[i : i + CHUNK_FILES] for i in range(0, len(files), CHUNK_FILES)]
    workers = min(len(chunks), os.cpu_count() or 1)
    if workers <= 1:
        return [read_chunk(store, chunk) for chunk in chunks]
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool: Executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method))
    with pool:
        reader = functools.partial(_read_chunk_in_worker, store.root_uri)
        return list(pool.map(reader, chunks))


def _best_per_cell(table: pa.Table) -> tuple[pa.Table, list[tuple[str, str, str]]]:
    """One row per cell_id, its best attempt: status ok over any other, then the latest
    finished_at; and (cell_id, attempt_id, status) of every other attempt."""
    ids = table.column("cell_id").to_pylist()
    statuses = table.column("status").to_pylist()
    finished = table.column("finished_at").to_pylist()
    best: dict[str, tuple[tuple[bool, object], int]] = {}
    for i, (cell_id, status, when) in enumerate(zip(ids, statuses, finished, strict=True)):
        key = (status == "ok", when.timestamp() if when is not None else float("-inf"))
        if cell_id not in best or key > best[cell_id][0]:
            best[cell_id] = (key, i)
    keep = sorted(i for _, i in best.values())
    kept = set(keep)
    attempts = table.column("attempt_id").to_pylist()
    others = [
        (ids[i], str(attempts[i]), str(statuses[i])) for i in range(len(ids)) if i not in kept
    ]
    return table.take(pa.array(keep, type=pa.int64())), sorted(others)


def _expected_cells(store: Store, sweep_id: str) -> list[str]:
    paths = SweepPaths(sweep_id)
    if not store.exists(paths.manifest):
        return []
    manifest = json.loads(store.read_bytes(paths.manifest))
    return [cell["cell_id"] for cell in manifest["cells"]]


READ_SCHEMA = ROW_SCHEMA.append(pa.field(FILE_COLUMN, pa.string()))
CACHE_SCHEMA = READ_SCHEMA.append(pa.field(VERSION_COLUMN, pa.string()))


def _cached_rows(
    store: Store, paths: SweepPaths, versions: dict[str, str]
) -> tuple[pa.Table | None, bool]:
    """(the rows an earlier collect read from files still here and unchanged, whether it held
    any other); None when there is no usable cache (none yet, another schema version,
    unreadable: it is rebuilt)."""
    try:
        if not store.exists(paths.collected_rows):
            return None, False
        cached = store.read_table(paths.collected_rows)
    except Exception:  # a torn or foreign cache costs a full read, never a wrong row
        return None, False
    if not cached.schema.equals(CACHE_SCHEMA):
        return None, False
    current = [
        versions.get(f) == v
        for f, v in zip(
            cached[FILE_COLUMN].to_pylist(), cached[VERSION_COLUMN].to_pylist(), strict=True
        )
    ]
    kept = cached.filter(pa.array(current, pa.bool_())).drop_columns([VERSION_COLUMN])
    return kept, kept.num_rows < cached.num_rows


def collect(store: Store, sweep_id: str, strict: bool = False, write: bool = True) -> Collected:
    """Aggregate a sweep's cell rows and write `<sweep_id>/aggregated.parquet` (unless not
    `write`: `bench status` only reads). Rows read before are taken from the collected-rows
    cache when their file is unchanged; only new or rewritten files are decoded."""
    paths = SweepPaths(sweep_id)
    versions = store.list_versions(paths.cells_dir, ".parquet")
    cached, dropped = _cached_rows(store, paths, versions)
    seen = set(cached[FILE_COLUMN].to_pylist()) if cached is not None else set()
    tables, unreadable = ([cached] if cached is not None else []), []
    new_files = sorted(f for f in versions if f not in seen)
    for table, failures in _read_all(store, new_files):
        unreadable += failures
        if table is not None:
            tables.append(table)
    if unreadable and strict:
        path, error = unreadable[0]
        raise UnreadableCellFile(f"{store.uri(path)}: {error}")
    rows = pa.concat_tables(tables) if tables else READ_SCHEMA.empty_table()
    if write and (cached is None or dropped or rows.num_rows > cached.num_rows):
        files = rows[FILE_COLUMN].to_pylist()
        versions_column = pa.array([versions[f] for f in files], pa.string())
        store.write_table(paths.collected_rows, rows.append_column(VERSION_COLUMN, versions_column))
    table, superseded = _best_per_cell(rows.drop_columns([FILE_COLUMN]))
    table = table.sort_by([("cell_index", "ascending"), ("cell_id", "ascending")])
    if write:
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
        superseded=superseded,
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


SUMMARY_EXTRA = ("latency_ms_p99_lo", "latency_ms_p99_hi", "verdict")
SUMMARY_MAX_ROWS = 40


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns right-aligned under their names (plain text: pandas costs 0.4 s to import)."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    return "\n".join(
        " ".join(text.rjust(width) for text, width in zip(line, widths, strict=True))
        for line in [header, *rows]
    )


def _interval(low: float | None, high: float | None) -> str:
    """An interval for the summary table; an end the sample count cannot give is shown so."""
    if low is None and high is None:
        return ""
    return f"{low:.4g}-{high:.4g}" if high is not None else f"{low:.4g}-?"


# One line per term the table may show, printed under it only when the term appears.
LEGEND = {
    "?": "p99 95% CI 'x-?': too few requests to bound P99 from above (it needs several "
    "hundred); measure longer",
    "stable": "stable: no significant change in level during the window beyond "
    "scenario.stable_tolerance (10% by default)",
    "drifting": "drifting: latency or throughput moved during the window (or an open loop "
    "fell behind); the number is not one steady figure",
    "insufficient": "insufficient: too few requests to judge stability; verdict_reason in the "
    "Parquet names the scenario.min_requests (and max_duration_s) that would do",
}


def _attempt_lines(collected: Collected) -> list[str]:
    """The attempts the aggregate does not show (a failed re-run beside an ok row, say)."""
    others = collected.superseded
    lines = [
        f"other attempt, not in the aggregate: {cell_id}: {status} (attempt {attempt})"
        for cell_id, attempt, status in others[:MAX_ATTEMPT_LINES]
    ]
    if len(others) > MAX_ATTEMPT_LINES:
        lines.append(f"... and {len(others) - MAX_ATTEMPT_LINES} more other attempts")
    return lines


def summary_text(collected: Collected) -> str:
    """A compact table of the aggregate plus lines naming missing, failed, unreadable cells.
    A large sweep shows its first rows and the count per status."""
    table = collected.table
    head = table.slice(0, SUMMARY_MAX_ROWS)
    header = [*SUMMARY_COLUMNS.values(), "verdict"]
    p99_at = header.index("p99_ms") + 1
    header.insert(p99_at, "p99 95% CI")  # the interval beside its estimate
    rows = []
    for r in head.select([*SUMMARY_COLUMNS, *SUMMARY_EXTRA]).to_pylist():
        cells = [_cell_text(r[column]) for column in SUMMARY_COLUMNS]
        cells.insert(p99_at, _interval(r["latency_ms_p99_lo"], r["latency_ms_p99_hi"]))
        rows.append([*cells, r["verdict"] or ""])
    lines = [_text_table(header, rows)]
    if table.num_rows > head.num_rows:
        statuses = Counter(table.column("status").to_pylist()).most_common()
        counts = ", ".join(f"{k} {v}" for k, v in statuses)
        more = table.num_rows - head.num_rows
        lines.append(f"... {more} more rows; {table.num_rows} cells: {counts}")
    for cell_id in collected.failed:
        error = collected.table.filter(pc.equal(collected.table["cell_id"], cell_id))
        message = (error.column("error")[0].as_py() or "")[:200]
        lines.append(f"failed: {cell_id}: {message}")
    shown_terms = {row[-1] for row in rows} | {"?" for row in rows if row[p99_at].endswith("?")}
    lines += [f"  {text}" for term, text in LEGEND.items() if term in shown_terms]
    if flagged := table.filter(pc.is_valid(table["percentile_flags"])).num_rows:
        lines.append(
            f"  {flagged} of {table.num_rows} rows carry percentile_flags (a percentile from "
            "too few requests); read them in the Parquet"
        )
    lines += [f"missing: {cell_id} (in the manifest, no row)" for cell_id in collected.missing]
    lines += [f"unreadable, skipped: {path}: {error}" for path, error in collected.unreadable]
    lines += _attempt_lines(collected)
    return "\n".join(lines)
