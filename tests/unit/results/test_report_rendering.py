"""How the report reads: its Markdown rendered (not shown raw) in the HTML and escaped, every
plot captioned and described in words, open intervals written "open" with a note saying what
that means, and which client-thread count a plot draws for each batch size. (The Markdown
subset itself: test_markup.py; the captions: test_report_captions.py; axes from zero:
test_report_plots.py.)"""

from __future__ import annotations

import html.parser
from typing import Any

import pandas as pd

from bench.results import report_plots
from bench.results.document import Figure, Table, Text, to_html, to_markdown
from bench.results.report import (
    OPEN_NOTE,
    P99_BOUNDED_N,
    THREADS_NOTE,
    build_report,
    recommend,
)
from bench.results.report_captions import plot_alt, plot_caption
from tests.unit.results.report_rows import report_frame


class _Page(html.parser.HTMLParser):
    """The text a reader sees (outside <style> and <title>), each figcaption's text and each
    <img>'s alt."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.captions: list[str] = []
        self.alts: list[str] = []
        self._skip = 0
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "title", "script"):
            self._skip += 1
        elif tag == "figcaption":
            self._caption = []
        elif tag == "img":
            self.alts.append(dict(attrs).get("alt") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title", "script"):
            self._skip -= 1
        elif tag == "figcaption" and self._caption is not None:
            self.captions.append("".join(self._caption))
            self._caption = None

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)
            if self._caption is not None:
                self._caption.append(data)


def read(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


def report_with_a_comparison() -> Any:
    """A report with every kind of text block: a comparison (bold), the SLA text (code)."""
    from bench.results.compare import Comparison
    from bench.results.report_decisions import comparison_section

    records = [
        {
            "model": "bert_base", "engine": "hf", "precision": "fp32", "batch_size": 1,
            "threads": 1, "instance": "g5.xlarge", "metric": metric, "change": 0.1,
            "change_lo": 0.08, "change_hi": 0.12, "verdict": "slower", "regression": True,
            "config_differs": "",
        }
        for metric in ("latency_ms_p50", "latency_ms_p99")
    ]  # fmt: skip
    section = comparison_section(Comparison(pd.DataFrame(records)), "base-1", threshold=0.05)
    return build_report(report_frame(), "s1", 40.0, [section])


# --- Markdown in the HTML -----------------------------------------------------------------


def test_the_pages_text_has_no_raw_markdown_and_its_markup_is_rendered():
    built = report_with_a_comparison()
    assert "**2 regression(s)**" in built.markdown and "`stable`" in built.markdown
    page = read(built.html)
    shown = "".join(page.text)
    assert "**" not in shown and "`" not in shown
    assert "<strong>2 regression(s)</strong>" in built.html
    assert "<code>stable</code>" in built.html and "<code>provisional</code>" in built.html


def test_a_tables_cells_stay_data():
    """A cell is data, not Markdown: its asterisks are the value, escaped, not bold."""
    page = to_html([Table(pd.DataFrame({"engine": ["**x** <y>"]}))], {})
    assert "<td>**x** &lt;y&gt;</td>" in page


# --- captions and alt text ----------------------------------------------------------------


def test_every_plot_has_a_caption_and_alt_text_in_words():
    built = report_with_a_comparison()
    page = read(built.html)
    assert len(page.captions) == len(page.alts) == len(built.images) >= 6
    for caption, alt in zip(page.captions, page.alts, strict=True):
        assert ".png" not in caption and ".png" not in alt
        assert len(alt.split()) >= 8 and len(caption.split()) > len(alt.split())
        assert caption.startswith(alt) and caption.endswith(".")
    for name in built.images:  # report.md: ![alt](file), then the caption
        assert f"![{plot_alt(name)}]({name})\n\n{plot_caption(name)}" in built.markdown


def test_a_figure_without_alt_text_keeps_the_old_form():
    """Blocks made before alt text existed render as they did (caption as the Markdown alt)."""
    assert Figure("a.png", "A").markdown() == "![A](a.png)"
    described = Figure("a.png", "A [plot]: **x**.", "A [plot]")
    assert described.markdown() == "![A \\[plot\\]](a.png)\n\nA [plot]: **x**."
    page = to_html([described], {"a.png": b"\x89PNG"})
    assert 'alt="A [plot]"' in page and "<figcaption>A [plot]: <strong>x</strong>." in page


# --- axes from zero -----------------------------------------------------------------------


# --- open intervals -----------------------------------------------------------------------


def test_an_open_interval_end_reads_open_and_a_missing_figure_stays_blank():
    frame = pd.DataFrame(
        {
            "status": ["ok", "ok", "failed"],
            "latency_ms_p99": [10.0, 12.0, None],
            "latency_ms_p99_hi": [11.0, None, None],  # row 2: open; row 3: nothing measured
            "gone": [None, None, None],
        }
    )
    table = Table(frame)
    assert table.has_open() and not Table(frame.iloc[[0, 2]]).has_open()
    assert list(table.cells()["latency_ms_p99_hi"]) == ["11", "open", ""]
    assert "| ok | 12 | open |  |" in table.markdown()
    assert "<td>12</td><td>open</td><td></td>" in to_html([table], {})


def test_the_report_says_open_and_what_open_means_once():
    built = build_report(report_frame(), "s1", None)  # no SLA: the Pareto front shows the open row
    assert "| open |" in built.markdown and "<td>open</td>" in built.html
    assert built.markdown.count(OPEN_NOTE) == 1 and f"at least {P99_BOUNDED_N}" in OPEN_NOTE
    assert "too few requests to bound the percentile" in OPEN_NOTE
    bounded = report_frame().assign(latency_ms_p99_hi=lambda f: f["latency_ms_p99"] * 1.05)
    assert OPEN_NOTE not in build_report(bounded, "s1", None).markdown


def test_a_provisional_row_says_how_many_requests_it_had_and_would_need():
    frame = report_frame().assign(latency_ms_p99_hi=None, n=150)
    standing = recommend(frame, 40.0).iloc[0]["standing"]
    assert standing == (
        f"provisional: P99 interval open (n=150 requests, worth fewer than the {P99_BOUNDED_N} "
        "independent ones a bound needs)"
    )
    assert recommend(frame.drop(columns=["n"]), 40.0).iloc[0]["standing"] == (
        "provisional: P99 interval open (too few requests)"
    )


# --- which thread count a point is --------------------------------------------------------


def test_plots_say_which_thread_count_each_batch_size_is_drawn_at(figures):
    frame = report_frame()
    report_plots.plot_throughput_vs_p99(frame, "bert_base")
    report_plots.plot_vs_batch(frame, "bert_base")
    report_plots.plot_cost_vs_batch(frame, "bert_base")
    p99, pair, cost = figures
    # the most-throughput count here is t2 for every batch size, and each point says so
    assert sorted(t.get_text() for t in p99.axes[0].texts if t.get_text()) == sorted(
        f"b{b} t2" for b in (1, 8) for _ in ("fp32", "fp16")
    )
    for axes in (*pair.axes, cost.axes[0]):
        assert {t.get_text() for t in axes.texts} == {"t2"}
        assert "most-throughput client-thread count" in axes.get_xlabel()
    built = build_report(frame, "s1", 40.0)
    assert THREADS_NOTE in built.markdown
    for name in ("throughput-vs-p99", "vs-batch-size", "cost-vs-batch-size"):
        assert "best client-thread count" in plot_caption(f"bert_base-{name}.png")


def test_text_blocks_keep_their_markdown_in_report_md():
    blocks_ = [Text("**bold** and `code`")]
    assert to_markdown(blocks_) == "**bold** and `code`\n"
    assert "<p><strong>bold</strong> and <code>code</code></p>" in to_html(blocks_, {})
