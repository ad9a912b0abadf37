"""What running a cell as several MPI ranks adds to each request (bench.measure.lockstep).

The `sleep` calibration engine with a fixed service time, as one process and as a group of
`--ranks` under mpirun (rank 0 announces each request, every follower sleeps the same time
and answers): the difference of the P50s is the channel's round trip per request, what a
FasterTransformer tensor-parallel cell's latency carries besides the model. Turns alternate
(one process, then the group) so a slow spell of the host hits both.

    python benchmarks/lockstep_overhead.py [--turns 3] [--ranks 2] [--service-ms 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def p50_ms(ranks: int, service_ms: float, seconds: float) -> float:
    """One `bench run` of the sleep engine as `ranks` processes: its P50 latency."""
    done = subprocess.run(
        [
            sys.executable, "-m", "bench", "run", "engine=sleep",
            f"engine.service_ms={service_ms}", f"engine.mpi_ranks={ranks}",
            "scenario.min_requests=1", f"scenario.min_duration_s={seconds}",
            f"scenario.max_duration_s={seconds}", "scenario.ci_target=0", "format=json",
        ],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    row = json.loads(done.stdout)
    assert row["status"] == "ok", row.get("error")
    return float(row["latency_ms_p50"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--service-ms", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    deltas = []
    print(f"turn | one process P50 ms | {args.ranks} ranks P50 ms | added ms")
    for turn in range(1, args.turns + 1):
        alone = p50_ms(1, args.service_ms, args.seconds)
        group = p50_ms(args.ranks, args.service_ms, args.seconds)
        deltas.append(group - alone)
        print(f"{turn} | {alone:.3f} | {group:.3f} | {group - alone:+.3f}")
    print(f"median added per request: {statistics.median(deltas):+.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
