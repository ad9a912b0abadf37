"""The host's own timer as a yardstick: a separate process sleeps 2 ms over and over and
reports how late it woke (P99). On a shared 2-core VM a plain sleep overshoots by 2.5 ms at
P99 with nothing else running, and by 4.5-5 ms beside a test server and its client, so a test
that bounds bench's dispatch lateness states the bound above what the host itself keeps."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SLEEPER = """
import sys, time
end = time.perf_counter() + float(sys.argv[1])
late = []
while time.perf_counter() < end:
    t = time.perf_counter()
    time.sleep(0.002)
    late.append(time.perf_counter() - t - 0.002)
late.sort()
print(late[int(len(late) * 0.99)] * 1e3)
"""


@dataclass
class Canary:
    p99_ms: float = float("nan")


@contextmanager
def host_timer(seconds: float) -> Iterator[Canary]:
    """Measure the host's sleep lateness over the next `seconds` while the body runs."""
    canary = Canary()
    process = subprocess.Popen(
        [sys.executable, "-c", SLEEPER, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        yield canary
    finally:
        out, _ = process.communicate(timeout=seconds + 30)
        canary.p99_ms = float(out.strip())
