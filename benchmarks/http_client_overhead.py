"""What engine=http's client costs per request: a cell against a server that answers at once.

Starts the OpenAI-compatible test server (tests/support/openai_server.py) with `--null` on
loopback, so each request is one token and no work, then runs an engine=http cell at 1, 2 and
4 client threads, streaming and not. The P50 is the client's own round trip (JSON in and out,
one HTTP/1.1 keep-alive exchange, the SSE parse) plus the server's, on the same machine: an
upper bound of what the harness adds to a real endpoint's latency; requests/s per client
thread is the most one client thread can drive.

    python benchmarks/http_client_overhead.py [--seconds 3] [--threads 1,2,4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", default="1,2,4")
    args = parser.parse_args()
    from bench.cell.runner import run_cell
    from bench.plan.grid import plan_from_overrides

    server = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--port", "0", "--null"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().split()[-1]}"
        print("client threads | stream | P50 ms | P99 ms | requests/s | requests/s per thread")
        for threads in (int(t) for t in args.threads.split(",")):
            for stream in ("true", "false"):
                cell = plan_from_overrides(
                    [
                        "model=opt_tiny",
                        "engine=http",
                        f"engine.url={url}",
                        f"engine.stream={stream}",
                        "engine.check_usage=false",  # the null server sends one token
                        f"threads={threads}",
                        "scenario.ci_target=0",
                        "scenario.min_requests=1",
                        f"scenario.min_duration_s={args.seconds}",
                        f"scenario.max_duration_s={args.seconds}",
                    ]
                ).cells[0]
                row = run_cell(cell).row
                if row["status"] != "ok":
                    raise SystemExit(f"cell {row['status']}: {row.get('error')}")
                rate = row["requests_per_s"]
                print(
                    f"{threads} | {stream} | {row['latency_ms_p50']:.3f} | "
                    f"{row['latency_ms_p99']:.3f} | {rate:.0f} | {rate / threads:.0f}"
                )
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
