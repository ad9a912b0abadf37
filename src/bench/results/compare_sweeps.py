"""`bench compare` over a store: BASE and NEW read from their aggregates (two sweeps, or one
interleaved A/B sweep split on its axis), compared, and the table kept in the store beside
NEW (`<new>/compared/<base>.parquet`, or `<sweep>/compared/ab-<axis>.parquet`)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from bench.config.checks import UsageError
from bench.results.compare import MATCH_KEYS, Comparison, compare
from bench.results.compare_ab import split_sides
from bench.results.sweep_rows import read_aggregate


@dataclass(frozen=True)
class SweepComparison:
    result: Comparison
    uri: str  # where the comparison table was written


def compare_sweeps(
    base_spec: str,
    new_spec: str | None,
    root: str,
    *,
    ab: str | None = None,
    threshold: float = 0.05,
    noise: float = 0.01,
    host_check: bool = True,
) -> SweepComparison:
    """Compare the sweep `base_spec` with `new_spec` (each a sweep id in the store at `root`
    or an aggregate's URI), or, with `ab` (and no `new_spec`), the two values of that grid
    axis in `base_spec`; UsageError when no ok cells match (neither a pass nor a
    regression: nothing was compared)."""
    base_store, base_id, base = read_aggregate(base_spec, root)
    if ab is not None:
        new_store = base_store
        base, new, values = split_sides(base, ab)
        out = f"{base_id}/compared/ab-{ab}.parquet"
        what = f"{base_spec}'s {ab}={values[0]} and {ab}={values[1]}"
    else:
        new_store, new_id, new = read_aggregate(str(new_spec), root)
        out = f"{new_id}/compared/{base_id}.parquet"
        what = f"{base_spec} and {new_spec}"
    result = compare(base_store, base, new_store, new, threshold, noise, ab, host_check)
    if result.table.empty:
        raise UsageError(
            f"no ok cells of {what} match on {', '.join(MATCH_KEYS)}: nothing to compare"
        )
    buffer = io.BytesIO()
    result.table.to_parquet(buffer, index=False)
    new_store.write_bytes(out, buffer.getvalue())
    return SweepComparison(result, new_store.uri(out))
