"""A fleet sized from a sweep in its store: the ok rows with the service times their stored
samples hold, through capacity.plan_fleet (for `bench capacity` and the report's fleet)."""

from __future__ import annotations

import pandas as pd

from bench.results.capacity import plan_fleet, service_times
from bench.results.compare import cell_samples
from bench.row.status import Status
from bench.store import Store


def sweep_fleet(
    store: Store,
    rows: pd.DataFrame,
    rate: float,
    p99_ms: float,
    peak_to_mean: float = 1.0,
    spot_per_hour: dict[str, float] | None = None,
) -> pd.DataFrame:
    """capacity.plan_fleet over a sweep's ok rows and their stored samples (a row whose
    samples file is gone is sized only if its own columns suffice: an SLA search's)."""
    latencies = {
        # service times: an open-loop cell's samples include its queueing, which the model adds
        str(row["cell_id"]): service_times(table)
        for _, row in rows[rows["status"] == Status.OK].iterrows()
        if (table := cell_samples(store, row)) is not None
    }
    return plan_fleet(rows, latencies, rate, p99_ms, peak_to_mean, spot_per_hour)
