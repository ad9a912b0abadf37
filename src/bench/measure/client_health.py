"""Whether the load generator, not the server, set the pace of a remote engine's window.

A server measured over the network is only measured when the client keeps up. The row says
it did not (client_limited, with the reason and the fix) when:
- the open loop's dispatcher ran late: arrivals handed to a client more than
  `LATE_DISPATCH_MS` after their scheduled time at the 99th percentile (the process was too
  busy to keep the schedule);
- requests waited for a free client thread: the open loop's queueing delay at the 99th
  percentile above `CLIENT_QUEUE_MS` with every thread busy, so the server saw fewer requests
  in flight than arrived (more `threads` lets them through);
- the client process used `CLIENT_CPU_SHARE` of one CPU or more on average: Python's client
  threads share one interpreter lock, so past one core they queue on it, not on the server.
In-process engines share their process with the client by design: the row says nothing."""

from __future__ import annotations

from typing import Any

LATE_DISPATCH_MS = 2.0
CLIENT_QUEUE_MS = 1.0
CLIENT_CPU_SHARE = 0.85


def client_health(row: dict[str, Any], remote: bool) -> dict[str, Any]:
    if not remote:
        return {}
    reasons = []
    late = row.get("dispatch_delay_ms_p99")
    if late is not None and late > LATE_DISPATCH_MS:
        reasons.append(
            f"arrivals were dispatched up to {late:.1f} ms late (P99): the client process "
            "could not keep the schedule; split the rate over more processes (repeats, cells)"
        )
    queued = row.get("queue_delay_ms_p99")
    if queued is not None and queued > CLIENT_QUEUE_MS:
        reasons.append(
            f"requests waited up to {queued:.1f} ms (P99) for a free client thread: raise "
            f"threads above {row.get('threads')} so the server sees every arrival"
        )
    own = row.get("client_cpus_mean")
    if own is not None and own >= CLIENT_CPU_SHARE:
        reasons.append(
            f"the client used {own:.2f} CPUs on average (one interpreter lock): run fewer "
            "threads per process, or the same load from several processes"
        )
    return {"client_limited": bool(reasons), "client_limited_reason": "; ".join(reasons) or None}
