"""cells/<cell_id>/<attempt>.<status>.parquet -> aggregated.parquet: one row per cell.

Scale: a one-row file of ~140 columns is nearly all metadata, and decoding it is the cost of
a 10,000-cell sweep. The files are read by polars, many per scan (its Parquet reader decodes such
files ~3x faster than pyarrow's and spreads them over the CPUs; on S3 its own client overlaps
the GETs, given the endpoint and credentials boto3 resolved), cast to the row schema as it
reads; a chunk it cannot read in one go (a corrupt or foreign file, an older column type it
will not widen, a failed GET) is read file by file through the store, so the bad file is
named. The rows stay in polars until the aggregate is written: pyarrow arrays built from
Python values import pandas (0.4 s of a cold collect), polars' do not.

Each file is cast to the current row schema (older files get the newer columns as nulls); one
row per cell is kept, its best attempt (an ok row over any other, then the latest), and the
other attempts are listed; cells the manifest lists with no row are named. A file that cannot
be read, or is not a bench row file (no schema_version and identity columns), is reported by
name and skipped (strict: fatal). Files of the older one-row-per-cell layout
(`cells/<cell_id>.parquet`) collect the same way.
"""

from __future__ import annotations

import functools
import io
import math
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.row.schema import ROW_SCHEMA, conform
from bench.row.status import RAN_AND_FAILED, Status
from bench.store import Store, SweepPaths, manifest_json
from bench.store.base import StoreError
from bench.store.paths import FILE_COLUMN, VERSION_COLUMN

SCAN_FILES = 2000  # files per polars scan: one bad file sends this many down the slow path
URI_COLUMN = "__bench_uri"
ROW_INDEX = "__bench_row"
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
    # cells whose attempt in the sweep that collected failed or timed out (set by the sweep;
    # an older ok row may still stand for them in the aggregate)
    failed_now: list[str] = field(default_factory=list)


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


def read_chunk(store: Store, paths: list[str]) -> ChunkResult:
    """The slow path, file by file: `paths` as one conformed table with each row's file, plus
    (path, error) of the files that could not be read."""
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
            files = pa.array([path] * result.num_rows, pa.string())
            tables.append(result.append_column(FILE_COLUMN, files))
    table = pa.concat_tables(tables).combine_chunks() if tables else None
    return table, unreadable


@functools.cache
def _polars_row_schema() -> pl.Schema:
    """The row schema in polars' types, mapped by hand: `pl.from_arrow` of an empty table
    would import pandas (0.4 s of a cold collect)."""
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


@functools.cache
def _cache_schema() -> pl.Schema:
    """What the collected-rows cache holds: every row, its file and the file's version."""
    return pl.Schema({**_polars_row_schema(), FILE_COLUMN: pl.String, VERSION_COLUMN: pl.String})


def _slow_frame(store: Store, listing: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """The files of `listing` read one by one (each bad one named), as cache-schema rows."""
    table, unreadable = read_chunk(store, listing[FILE_COLUMN].to_list())
    if table is None:
        return pl.DataFrame(schema=_cache_schema()), unreadable
    frame = pl.from_arrow(table).cast(dict(_polars_row_schema()))  # type: ignore[union-attr]
    versions = listing.select(FILE_COLUMN, VERSION_COLUMN)
    return frame.join(versions, on=FILE_COLUMN, how="left").select(
        _cache_schema().names()
    ), unreadable


def _scan(store: Store, listing: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """One polars scan of the files in `listing` (URI, file, version), or file by file where
    it fails."""
    try:
        frame = pl.scan_parquet(
            listing[URI_COLUMN].to_list(),
            storage_options=store.scan_options(),
            schema=_polars_row_schema(),
            missing_columns="insert",  # an older file: the newer columns are null
            extra_columns="ignore",
            cast_options=pl.ScanCastOptions(integer_cast="upcast", float_cast="upcast"),
            include_file_paths=URI_COLUMN,
            glob=False,
            hive_partitioning=False,
        ).collect()
    except Exception:  # any failure: the per-file path says which file and why
        return _slow_frame(store, listing)
    frame = frame.rechunk()  # a chunk per file in some columns makes every later step slow
    # A file without bench's identity columns reads as rows of nulls: re-read those alone
    # so they are named (and skipped) as the per-file path would.
    identity = pl.all_horizontal(pl.col(c).is_not_null() for c in REQUIRED_COLUMNS)
    suspect = frame.select(URI_COLUMN, *REQUIRED_COLUMNS).filter(~identity)[URI_COLUMN].unique()
    if not suspect.is_empty():
        frame = frame.filter(~pl.col(URI_COLUMN).is_in(suspect.implode()))
    good = frame.join(listing, on=URI_COLUMN, how="left").select(_cache_schema().names())
    if suspect.is_empty():
        return good, []
    suspects = listing.filter(pl.col(URI_COLUMN).is_in(suspect.implode()))
    rest, unreadable = _slow_frame(store, suspects)
    return pl.concat([good, rest]), unreadable


def _read_all(
    store: Store, files: list[str], versions: dict[str, str]
) -> list[tuple[pl.DataFrame, list[tuple[str, str]]]]:
    """`files` in scans of SCAN_FILES (polars spreads each over the CPUs and S3 GETs)."""
    listing = pl.DataFrame(
        {
            URI_COLUMN: [store.uri(f) for f in files],
            FILE_COLUMN: files,
            VERSION_COLUMN: [versions[f] for f in files],
        },
        schema={URI_COLUMN: pl.String, FILE_COLUMN: pl.String, VERSION_COLUMN: pl.String},
    )
    return [_scan(store, listing.slice(i, SCAN_FILES)) for i in range(0, len(files), SCAN_FILES)]


def _best_per_cell(rows: pl.DataFrame) -> tuple[pl.DataFrame, list[tuple[str, str, str]]]:
    """One row per cell_id, its best attempt: status ok over any other, then the latest
    finished_at (a row without one is the oldest), then the first read; and (cell_id,
    attempt_id, status) of every other attempt."""
    indexed = rows.with_row_index(ROW_INDEX)
    ranked = indexed.sort(
        [
            "cell_id",
            pl.col("status").eq(Status.OK.value).fill_null(False),
            "finished_at",
            ROW_INDEX,
        ],
        descending=[False, False, False, True],
        nulls_last=False,
        maintain_order=True,
    )
    best = ranked.unique(subset="cell_id", keep="last", maintain_order=True)
    others = indexed.filter(~pl.col(ROW_INDEX).is_in(best[ROW_INDEX].implode()))
    superseded = sorted(
        (cell_id, str(attempt), str(status))
        for cell_id, attempt, status in others.select("cell_id", "attempt_id", "status").iter_rows()
    )
    return best.sort(ROW_INDEX).drop(ROW_INDEX), superseded


def _expected_cells(store: Store, sweep_id: str) -> list[str]:
    manifest = manifest_json(store, sweep_id)
    return [cell["cell_id"] for cell in manifest["cells"]] if manifest else []


def _cached_rows(data: bytes | None, versions: dict[str, str]) -> tuple[pl.DataFrame | None, bool]:
    """(the rows an earlier collect read from files still here and unchanged, whether it held
    any other), from the cache's bytes; None when there is no usable cache (none yet,
    another schema version, unreadable: it is rebuilt)."""
    if data is None:
        return None, False
    try:
        cached = pl.read_parquet(io.BytesIO(data))
    except Exception:  # a torn or foreign cache costs a full read, never a wrong row
        return None, False
    if cached.schema != _cache_schema():
        return None, False
    current = pl.DataFrame(
        {FILE_COLUMN: list(versions), VERSION_COLUMN: list(versions.values())},
        schema={FILE_COLUMN: pl.String, VERSION_COLUMN: pl.String},
    )
    kept = cached.join(current, on=[FILE_COLUMN, VERSION_COLUMN], how="semi", maintain_order="left")
    return kept, kept.height < cached.height


def _arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """A polars frame as a table of exactly `schema` (polars writes large/view strings)."""
    return frame.rechunk().to_arrow().select(schema.names).cast(schema)


CACHE_SCHEMA = ROW_SCHEMA.append(pa.field(FILE_COLUMN, pa.string())).append(
    pa.field(VERSION_COLUMN, pa.string())
)


def collect(store: Store, sweep_id: str, strict: bool = False, write: bool = True) -> Collected:
    """Aggregate a sweep's cell rows and write `<sweep_id>/aggregated.parquet` (unless not
    `write`: `bench status` only reads). Rows read before are taken from the collected-rows
    cache when their file is unchanged; only new or rewritten files are decoded.

    Two collects of one sweep may run at once (a user's and a sweep's, on S3 a cold one
    takes a minute). Each writes the cache and the aggregate only if they are still what it
    found when it began (compare-and-swap on their versions); one that finds them changed
    reads again, so a slower collect that began earlier never writes over a newer aggregate."""
    paths = SweepPaths(sweep_id)
    for _ in range(COLLECT_TRIES):
        cache_data, cache_version = _read_versioned(store, paths.collected_rows)
        found = {
            paths.collected_rows: cache_version,
            paths.aggregated: _read_versioned(store, paths.aggregated)[1] if write else None,
        }
        collected, cache = _collect_once(store, sweep_id, strict, cache_data)
        if not write:
            return collected
        if cache is not None and not _swap(store, paths.collected_rows, cache, found):
            continue
        if _swap(store, paths.aggregated, collected.table, found):
            return collected
    raise StoreError(
        f"{store.uri(paths.aggregated)} kept changing while this collect ran "
        f"({COLLECT_TRIES} tries): another collect is writing it; its rows are safe in "
        "cells/, run collect again"
    )


COLLECT_TRIES = 5


def _read_versioned(store: Store, rel: str) -> tuple[bytes | None, str | None]:
    try:
        return store.read_versioned(rel)
    except FileNotFoundError:
        return None, None


def _swap(store: Store, rel: str, table: pa.Table, found: dict[str, str | None]) -> bool:
    """Write `table` at `rel` if it is still the version `found` there (absent: create it)."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    data = buffer.getvalue()
    if found[rel] is None:
        return store.create(rel, data)
    return store.replace_if(rel, data, found[rel])


def _collect_once(
    store: Store, sweep_id: str, strict: bool, cache_data: bytes | None
) -> tuple[Collected, pa.Table | None]:
    """The aggregate from one listing (and the collected-rows cache's bytes), and the cache
    to write (None: it holds nothing new)."""
    paths = SweepPaths(sweep_id)
    versions = store.list_versions(paths.cells_dir, ".parquet")
    cached, dropped = _cached_rows(cache_data, versions)
    seen = set(cached[FILE_COLUMN].to_list()) if cached is not None else set()
    frames, unreadable = ([cached] if cached is not None else []), []
    new_files = sorted(f for f in versions if f not in seen)
    for frame, failures in _read_all(store, new_files, versions):
        unreadable += failures
        frames.append(frame)
    if unreadable and strict:
        path, error = unreadable[0]
        raise UnreadableCellFile(f"{store.uri(path)}: {error}")
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=_cache_schema())
    changed = cached is None or dropped or rows.height > cached.height
    best, superseded = _best_per_cell(rows)
    best = best.sort(["cell_index", "cell_id"], nulls_last=True, maintain_order=True)
    table = _arrow(best, ROW_SCHEMA)
    expected = _expected_cells(store, sweep_id)
    present = set(best["cell_id"].to_list())
    statuses = best.select("cell_id", "status").iter_rows()
    collected = Collected(
        table=table,
        expected=expected,
        missing=[cell_id for cell_id in expected if cell_id not in present],
        failed=[cell_id for cell_id, status in statuses if status in RAN_AND_FAILED],
        unreadable=unreadable,
        superseded=superseded,
    )
    return collected, _arrow(rows, CACHE_SCHEMA) if changed else None


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


SUMMARY_EXTRA = ("latency_ms_p99_lo", "latency_ms_p99_hi", "stability")
_FIX = re.compile(r"scenario\.min_requests=(\d+)")  # the fix a percentile flag ends with
SUMMARY_MAX_ROWS = 40


def clearing_advice(table: pa.Table) -> str:
    """'; to clear them all: ...' with both settings a sweep needs: the most requests any
    flagged row asks for, and the window that gives them at the slowest such row's measured
    rate (with a tenth to spare), so the advice can be met as given."""
    columns = ("percentile_flags", "n", "window_s")
    if not all(c in table.column_names for c in columns):
        return ""
    need, seconds = 0, 0.0
    for flag, n, window_s in zip(*(table.column(c).to_pylist() for c in columns), strict=True):
        if not flag or not (found := _FIX.search(flag)):
            continue
        requests = int(found.group(1))
        need = max(need, requests)
        if n and window_s:  # requests/s this cell measured
            seconds = max(seconds, requests / (n / window_s) * 1.1)
    if not need:
        return ""
    window = f" scenario.max_duration_s={math.ceil(seconds)}" if seconds else ""
    return f"; to clear them all: scenario.min_requests={need}{window}"


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
    return "-".join("?" if end is None else f"{end:.4g}" for end in (low, high))


# One line per term the table may show, printed under it only when the term appears.
LEGEND = {
    "?": "p99 95% CI 'x-?': too few requests to bound P99 from above (it needs several "
    "hundred); measure longer",
    "stable": "stable: no significant change in level during the window beyond "
    "scenario.stable_tolerance (10% by default)",
    "drifting": "drifting: latency or throughput moved during the window (or an open loop "
    "fell behind); the number is not one steady figure",
    "insufficient": "insufficient: too few requests to judge stability; stability_reason in the "
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
    header = [*SUMMARY_COLUMNS.values(), "stability"]
    p99_at = header.index("p99_ms") + 1
    header.insert(p99_at, "p99 95% CI")  # the interval beside its estimate
    rows = []
    for r in head.select([*SUMMARY_COLUMNS, *SUMMARY_EXTRA]).to_pylist():
        cells = [_cell_text(r[column]) for column in SUMMARY_COLUMNS]
        cells.insert(p99_at, _interval(r["latency_ms_p99_lo"], r["latency_ms_p99_hi"]))
        rows.append([*cells, r["stability"] or ""])
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
    flags = [f for f in table.column("percentile_flags").to_pylist() if f]
    if flags:
        lines.append(
            f"  {len(flags)} of {table.num_rows} rows carry percentile_flags (a percentile from "
            f"too few requests; each row's says which and its fix){clearing_advice(table)}"
        )
    lines += [f"missing: {cell_id} (in the manifest, no row)" for cell_id in collected.missing]
    lines += [f"unreadable, skipped: {path}: {error}" for path, error in collected.unreadable]
    lines += _attempt_lines(collected)
    return "\n".join(lines)
