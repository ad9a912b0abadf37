"""Finding a sweep in a store: its folder (checked before a verb reads or writes there), its
aggregate's rows (a sweep id in a store, or an aggregate's URI), and, for an id the store
lacks, the sweeps the user may have meant."""

from __future__ import annotations

import io
from typing import Literal, NamedTuple

import pandas as pd

from bench.config.checks import ConfigError, check_sweep_id, did_you_mean
from bench.plan.history import list_sweeps
from bench.store import Store, SweepPaths, open_store

AGGREGATE_SUFFIX = "/aggregated.parquet"


class SweepRows(NamedTuple):
    store: Store
    sweep_id: str
    rows: pd.DataFrame  # the sweep's aggregate: one row per cell


def find_sweep(
    root: str, sweep_id: str, needs: Literal["rows", "manifest"]
) -> tuple[Store, SweepPaths]:
    """The store at `root`, checked, and the sweep's paths there; one line (ConfigError) when
    the store is unusable or the sweep has no cell rows (`needs` "rows": collect and report,
    which write) or no manifest ("manifest": status, which only reads)."""
    store = open_store(root)
    store.check(writing=needs == "rows")
    paths = SweepPaths(sweep_id)
    if needs == "rows":
        found = store.has_files(paths.cells_dir, ".parquet")
    else:
        found = store.exists(paths.manifest)
    if not found:
        what = "cell rows" if needs == "rows" else "manifest"
        hint = sweep_hint(store, sweep_id)
        raise ConfigError("sweep_id", sweep_id, f"no {what} under {store.uri(sweep_id)}{hint}")
    return store, paths


def sweep_hint(store: Store, sweep_id: str) -> str:
    """'; did you mean ...' naming the store's sweeps a short or mistyped id stands for: the
    grid name a sweep id starts with (`smoke` for `smoke-2b29ec4c`, newest first), else the
    closest id. Empty when the store has none close."""
    try:
        ids = [s.sweep_id for s in list_sweeps(store, statuses=False)]
    except Exception:  # an unreadable store: the error the hint goes with names it already
        return ""
    started = [i for i in ids if i.startswith(f"{sweep_id}-")]
    if started:
        more = f" (or {len(started) - 1} more: python -m bench ls)" if len(started) > 1 else ""
        return f"; did you mean {started[0]}?{more}"
    return did_you_mean(sweep_id, ids)


def read_aggregate(spec: str, root: str) -> SweepRows:
    """The aggregate's rows of a sweep id in the store at `root`, or of an aggregate's URI
    (<root>/<sweep_id>/aggregated.parquet, local or s3://); one line (ConfigError) saying
    whether the sweep is uncollected or not in this store."""
    if spec.endswith(AGGREGATE_SUFFIX):  # a URI the user spelled out: read where it says
        root, sweep_id = spec.removesuffix(AGGREGATE_SUFFIX).rsplit("/", 1)
    else:
        sweep_id = spec
        check_sweep_id(sweep_id)  # a folder of the store, never a path out of it
    store = open_store(root)
    store.check(writing=False)
    paths = SweepPaths(sweep_id)
    try:
        data = store.read_bytes(paths.aggregated)
    except FileNotFoundError:
        if store.exists(paths.manifest):  # the sweep is here; its rows were never collected
            why = f"not collected yet: python -m bench collect {sweep_id} store.root={root}"
        else:  # not this store's: a short id, a typo, or a sweep kept elsewhere
            why = (
                f"no sweep {sweep_id} in the store {root}{sweep_hint(store, sweep_id)}; a "
                "sweep in another store is named by its aggregate's URI "
                "(ROOT/SWEEP_ID/aggregated.parquet)"
            )
        raise ConfigError("sweep", spec, why) from None
    return SweepRows(store, sweep_id, pd.read_parquet(io.BytesIO(data)))
