"""Regenerate docs/img/report.png and the plots beside it from a real sweep: `make docs`.

Runs the smoke grid into a scratch store (about two minutes on 2 cores), reports it with the
SLAs the README's example uses, and photographs the report's HTML page in headless Chromium
(Debian's `chromium`, as a reader would open it), so the picture in the docs is what `bench
report` makes today. The throughput plot of each model is copied beside it.

    python docs/report_screenshot.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS_IMG = Path(__file__).resolve().parent / "img"
SLA = ["sla.p99_ms=20", "sla.ttft_ms=15"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def bench(*args: str) -> str:
    """`python -m bench ARGS`; its stdout; stops the script with its stderr on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):  # 1: some cell failed, still a report to show
        raise SystemExit(f"bench {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def screenshot(page: Path, out: Path) -> None:
    """A full-width capture of `page` by headless Chromium (no sandbox: it may run as root)."""
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        raise SystemExit("no headless browser: apt-get install chromium")
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1500,2600", f"--screenshot={out}", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="use and keep this store (default: a temp one)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-docs-"))
    try:
        bench("sweep", "+grid=smoke", f"store.root={root}")
        sweep = next(p.name for p in root.iterdir() if p.name.startswith("smoke-"))
        print(bench("report", sweep, f"store.root={root}", *SLA))
        report = root / sweep / "report"
        DOCS_IMG.mkdir(exist_ok=True)
        screenshot(report / "index.html", DOCS_IMG / "report.png")
        for plot in report.glob("*-throughput-vs-p99.png"):
            shutil.copy(plot, DOCS_IMG / plot.name)
        print(f"wrote {DOCS_IMG / 'report.png'} and the throughput plots beside it")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
