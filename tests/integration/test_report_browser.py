"""The report page as a reader sees it: opened in headless Chromium (offline, a fresh profile:
bench.results.report_browser), its DOM read back after load. No raw Markdown (`**`,
backticks) in the rendered text, every <img> decoded (naturalWidth > 0, written into the
page's title by a small script the test adds to a copy of the page), every caption and alt
text words rather than a file name.

Needs Debian's `chromium` (apt-get install chromium): without it the test is skipped with
the reason, unless BENCH_REQUIRE_BROWSER=1, where that is a failure. About 3 s."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from bench.results.report_browser import dump_dom, find_browser
from tests.unit.results.test_report_rendering import read, report_with_a_comparison

# Runs once the page and its images have loaded: what it found, as JSON, in the title
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  document.title = JSON.stringify({
    images: images.length,
    broken: images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt),
    rawMarkdown: /\\*\\*|`/.test(document.body.innerText),
    strong: document.querySelectorAll("strong").length,
  });
});
</script>"""


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        missing = "no Chromium on PATH (apt-get install chromium)"
        if os.environ.get("BENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BENCH_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(f"{missing}; BENCH_REQUIRE_BROWSER=1 makes this a failure")
    return found


def probed(html: str, folder: Path) -> tuple[dict[str, object], str]:
    """The probe's findings and the DOM, for `html` opened from a file in `folder`."""
    page = folder / "index.html"
    page.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = dump_dom(page)
    title = re.search(r"<title>(.*?)</title>", dom, re.S)
    assert title is not None, dom[:2000]
    return json.loads(title.group(1).replace("&quot;", '"').replace("&amp;", "&")), dom


def test_the_probe_sees_a_broken_image(browser: str, tmp_path: Path) -> None:
    """The check below can fail: an image that does not decode is reported by its alt text."""
    page = (
        "<!doctype html><html><head><title>t</title></head><body>"
        '<img alt="broken" src="data:image/png;base64,AAAA"><p>**raw**</p></body></html>'
    )
    found, _ = probed(page, tmp_path)
    assert found == {"images": 1, "broken": ["broken"], "rawMarkdown": True, "strong": 0}


def test_the_report_page_renders_its_markdown_images_and_captions(
    browser: str, tmp_path: Path
) -> None:
    built = report_with_a_comparison()
    found, dom = probed(built.html, tmp_path)
    assert found["images"] == len(built.images) >= 6
    assert found["broken"] == [] and found["rawMarkdown"] is False
    assert isinstance(found["strong"], int) and found["strong"] >= 1  # "2 regression(s)"
    page = read(dom)
    shown = "".join(page.text)
    assert "**" not in shown and "`" not in shown
    assert "2 regression(s)" in shown and "open" in shown
    assert len(page.captions) == len(page.alts) == len(built.images)
    for caption, alt in zip(page.captions, page.alts, strict=True):
        assert ".png" not in caption and ".png" not in alt
        assert len(alt.split()) >= 8 and caption.startswith(alt)
