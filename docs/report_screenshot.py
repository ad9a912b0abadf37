"""Regenerate docs/img/report.png and the plots beside it from a real sweep: `make docs`.

Runs a grid into a scratch store, reports it, and photographs the report's HTML page in
headless Chromium (Debian's `chromium`, as a reader would open it; offline, in a fresh
profile: bench.results.report_browser), so the picture in the docs is what `bench report`
makes today. Two pages:

- `smoke` (the default; about two minutes on 2 cores): the smoke grid with the SLAs the
  README's example uses -> docs/img/report.png, each model's throughput plot and
  bert_tiny's plot against batch size beside it;
- `seed004`: seed 004 in miniature (`+grid=seed004_cpu`: two CPU instance labels priced as
  g5.4xlarge and g4dn.4xlarge, client threads 1-4, batch 1-8; about four minutes) ->
  docs/img/seed004_report.png (the whole page: the ratio table and every plot), and its
  throughput-vs-P95 curves beside it as seed004-<model>-throughput-vs-p95.png.

    python docs/report_screenshot.py [smoke|seed004] [--keep DIR]

With --keep, a second run resumes the sweep there (its ok cells are not run again).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.results import report_browser

DOCS_IMG = Path(__file__).resolve().parent / "img"


@dataclass(frozen=True)
class Page:
    grid: str
    report_args: tuple[str, ...]  # `bench report` options: SLAs, ratio=
    image: str  # the screenshot's name in docs/img
    height: int  # window height in pixels: what of the page the picture shows
    plots: tuple[str, ...]  # report plots (glob patterns of their names) copied beside it
    prefix: str = ""  # put before each copied plot's name


PAGES = {
    "smoke": Page(
        "smoke",
        ("sla.p99_ms=20", "sla.ttft_ms=15"),
        "report.png",
        2600,
        ("*-throughput-vs-p99.png", "bert_tiny-vs-batch-size.png"),
    ),
    "seed004": Page(
        "seed004_cpu",
        ("ratio=cpu-g5/cpu-g4dn",),
        "seed004_report.png",
        9000,
        ("*-throughput-vs-p95.png",),
        prefix="seed004-",
    ),
}


def bench(*args: str) -> str:
    """`python -m bench ARGS`; its stdout; stops the script with its stderr on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):  # 1: some cell failed, still a report to show
        raise SystemExit(f"bench {args[0]} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def screenshot(page: Path, out: Path, height: int = 2600) -> None:
    """A full-width capture of `page` by headless Chromium."""
    if report_browser.find_browser() is None:
        raise SystemExit("no headless browser: apt-get install chromium")
    report_browser.screenshot(page, out, height=height)


def crop_and_shrink(image: Path) -> None:
    """Cut the window's empty space below a page shorter than the window, and store the
    picture with a 256-colour palette (a third of the bytes; plots and text are flat colours).
    With Pillow, which matplotlib brings."""
    from PIL import Image, ImageChops

    with Image.open(image) as shot:
        shot = shot.convert("RGB")
    box = ImageChops.difference(shot, Image.new("RGB", shot.size, "white")).getbbox()
    if box is not None and box[3] + 40 < shot.height:
        shot = shot.crop((0, 0, shot.width, box[3] + 40))
    shot.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(image, optimize=True)


def photograph(page: Page, root: Path) -> Path:
    """Sweep (or resume) the page's grid under `root`, report it, take the picture; its path."""
    bench("sweep", f"+grid={page.grid}", f"store.root={root}", f"sweep_id={page.grid}-docs")
    sweep = f"{page.grid}-docs"
    print(bench("report", sweep, f"store.root={root}", *page.report_args))
    report = root / sweep / "report"
    DOCS_IMG.mkdir(exist_ok=True)
    screenshot(report / "index.html", DOCS_IMG / page.image, page.height)
    crop_and_shrink(DOCS_IMG / page.image)
    for pattern in page.plots:
        for plot in report.glob(pattern):
            shutil.copy(plot, DOCS_IMG / f"{page.prefix}{plot.name}")
    return DOCS_IMG / page.image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", nargs="?", default="smoke", choices=sorted(PAGES))
    parser.add_argument("--keep", type=Path, help="use and keep this store (default: a temp one)")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-docs-"))
    try:
        out = photograph(PAGES[args.page], root)
        print(f"wrote {out} and the plots beside it")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
