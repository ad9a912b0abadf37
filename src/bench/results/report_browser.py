"""Open a report page in headless Chromium, as a reader would: its DOM after the page loaded
(`--dump-dom`) or a screenshot. The docs' screenshot (docs/report_screenshot.py) and the
browser test (tests/integration/test_report_browser.py) both come through here.

The browser runs with nothing to reach: no sandbox (it may run as root in a container), no
GPU, no QUIC, no first-run, background, component-update or sync traffic, and a fresh
profile each time (a profile left by an earlier run, or a locked one, changes nothing). The
page is a file:// URL; the report inlines its images, so it asks for nothing else.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
QUIET = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_browser() -> str | None:
    """The first headless-capable Chromium on PATH (Debian's package is `chromium`)."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def run_browser(page: Path, *options: str, timeout: float = 120.0) -> str:
    """Chromium's stdout for `page` with `options` (e.g. --dump-dom), in a fresh profile.
    Raises FileNotFoundError without a browser, CalledProcessError when it fails."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium on PATH: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        done = subprocess.run(
            [browser, *QUIET, f"--user-data-dir={profile}", *options, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    return done.stdout


def dump_dom(page: Path, wait_ms: int = 5000) -> str:
    """The page's DOM once loaded and its scripts ran (virtual time: the budget passes as
    soon as the page is idle, so a quick page costs no real wait)."""
    return run_browser(page, f"--virtual-time-budget={wait_ms}", "--dump-dom")


def screenshot(page: Path, out: Path, width: int = 1500, height: int = 2600) -> None:
    """A `width` x `height` capture of the top of `page` into `out` (PNG)."""
    run_browser(page, f"--window-size={width},{height}", f"--screenshot={out.resolve()}")
