"""How the report reads: its Markdown rendered (not shown raw) in the HTML and escaped, every
plot captioned and described in words, rate / latency / cost axes from zero, open intervals
written "open" with a note saying what that means, and which client-thread count a plot
draws for each batch size."""

from __future__ import annotations

import html.parser
from typing import Any

import pandas as pd
import pytest

from bench.results import report_plots
from bench.results.document import Figure, Table, Text, to_html, to_markdown
from bench.results.markup import blocks, inline
from bench.results.report import (
    OPEN_NOTE,
    P99_BOUNDED_N,
    THREADS_NOTE,
    build_report,
    recommend,
)
from bench.results.report_captions import KINDS, plot_alt, plot_caption


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


def _rows() -> pd.DataFrame:
    """bert_base on one instance, two precisions, batch 1/8, threads 1/2; throughput far from
    zero (so an axis left to autoscale would not start there); fp16 b8 t2 (the cheapest)
    has its P99 interval open above (n too small), the rest bounded and stable."""
    rows = []
    for precision, speed in (("fp32", 1.0), ("fp16", 1.6)):
        for batch in (1, 8):
            for threads in (1, 2):
                p99 = 10.0 * batch**0.5 * threads / speed
                rows.append(
                    {
                        "model": "bert_base", "task": "encode", "engine": "hf",
                        "instance": "g5.xlarge", "precision": precision, "batch_size": batch,
                        "threads": threads, "tp_degree": 1, "status": "ok", "n": 2000,
                        "latency_ms_p50": p99 * 0.8, "latency_ms_p95": p99 * 0.9,
                        "latency_ms_p99": p99, "latency_ms_p99_lo": p99 * 0.95,
                        "latency_ms_p99_hi": p99 * 1.05, "stability": "stable",
                        "inferences_per_s": 900.0 + 40 * batch * speed + 5 * threads,
                        "usd_per_million_inferences": 0.9 - 0.05 * batch * speed - 0.01 * threads,
                        "load_s": 2.0, "init_s": 0.3,
                    }
                )  # fmt: skip
    frame = pd.DataFrame(rows)
    open_row = (frame["precision"] == "fp16") & (frame["batch_size"] == 8) & (frame["threads"] == 2)
    frame.loc[open_row, ["latency_ms_p99_hi", "n"]] = [None, 150]
    return frame


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
    return build_report(_rows(), "s1", 40.0, [section])


# --- Markdown in the HTML -----------------------------------------------------------------


def test_the_pages_text_has_no_raw_markdown_and_its_markup_is_rendered():
    built = report_with_a_comparison()
    assert "**2 regression(s)**" in built.markdown and "`stable`" in built.markdown
    page = read(built.html)
    shown = "".join(page.text)
    assert "**" not in shown and "`" not in shown
    assert "<strong>2 regression(s)</strong>" in built.html
    assert "<code>stable</code>" in built.html and "<code>provisional</code>" in built.html


def test_inline_markdown_is_rendered_and_everything_else_escaped():
    assert inline("**a** `b<c>` *e* [docs](commands.md#report)") == (
        "<strong>a</strong> <code>b&lt;c&gt;</code> <em>e</em> "
        '<a href="commands.md#report">docs</a>'
    )
    # markup that is not ours stays text, escaped; underscores are never emphasis
    assert inline("<script>x</script> & bert_tiny_b1") == (
        "&lt;script&gt;x&lt;/script&gt; &amp; bert_tiny_b1"
    )
    assert "href" not in inline("[x](javascript:alert)") and "<a" not in inline("[x](data:x)")
    assert inline(r"\*\*not bold\*\* 2 * 3") == "**not bold** 2 * 3"
    assert inline("``a`b``") == "<code>a`b</code>"
    assert inline('**"q" & <b>**') == "<strong>&quot;q&quot; &amp; &lt;b&gt;</strong>"


def test_lists_tables_and_paragraphs_become_their_html_blocks():
    assert blocks("- one\n- two `x`\n  wrapped\n\n1. first\n2. second") == (
        "<ul><li>one</li><li>two <code>x</code> wrapped</li></ul>"
        "<ol><li>first</li><li>second</li></ol>"
    )
    assert blocks("| a | b\\|c |\n|---|--:|\n| 1 | **2** |") == (
        "<table><thead><tr><th>a</th><th>b|c</th></tr></thead>"
        "<tbody><tr><td>1</td><td><strong>2</strong></td></tr></tbody></table>"
    )
    # not a table without its rule; a paragraph's lines join; `#` starts no heading
    assert blocks("| a |\n| b |") == "<p>| a | | b |</p>"
    assert blocks("## not a heading\nsecond line") == "<p>## not a heading second line</p>"


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


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.prefix + kind.suffix)
def test_each_kind_of_plot_names_its_subject_and_says_how_to_read_it(kind):
    name = f"{kind.prefix}bert_base{kind.suffix}" if "{subject}" in kind.shows else None
    name = name or f"{kind.prefix}{kind.suffix}"
    alt, caption = plot_alt(name), plot_caption(name)
    assert ".png" not in caption and caption == f"{alt} {kind.read}"
    assert ("bert_base" in alt) == ("{subject}" in kind.shows)


def test_an_unknown_plot_is_described_without_its_file_name():
    assert ".png" not in plot_caption("mystery.png") and plot_alt("mystery.png")


def test_a_figure_without_alt_text_keeps_the_old_form():
    """Blocks made before alt text existed render as they did (caption as the Markdown alt)."""
    assert Figure("a.png", "A").markdown() == "![A](a.png)"
    described = Figure("a.png", "A [plot]: **x**.", "A [plot]")
    assert described.markdown() == "![A \\[plot\\]](a.png)\n\nA [plot]: **x**."
    page = to_html([described], {"a.png": b"\x89PNG"})
    assert 'alt="A [plot]"' in page and "<figcaption>A [plot]: <strong>x</strong>." in page


# --- axes from zero -----------------------------------------------------------------------


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The matplotlib figures the plots make, kept open instead of turned into PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    made: list[Any] = []
    monkeypatch.setattr(report_plots, "figure_png", lambda figure: made.append(figure) or b"")
    yield made
    import matplotlib.pyplot as plt

    plt.close("all")


def test_rate_latency_and_cost_axes_start_at_zero(figures):
    frame = _rows()
    assert frame["inferences_per_s"].min() > 900  # autoscaling alone would start near 900
    report_plots.plot_throughput_vs_p99(frame, "bert_base", 40.0)
    report_plots.plot_throughput_vs_p95(frame, "bert_base")
    report_plots.plot_vs_batch(frame, "bert_base")
    report_plots.plot_cost_vs_batch(frame, "bert_base")
    report_plots.plot_load_time(frame)
    p99, p95, pair, cost, load = figures
    for axes in (p99.axes[0], *(a for a in p95.axes if a.get_visible())):
        assert axes.get_xlim()[0] == 0 and axes.get_ylim()[0] == 0  # latency and throughput
        assert axes.get_ylim()[1] > frame["inferences_per_s"].max()  # the top still fits
    for axes in (*pair.axes, cost.axes[0], load.axes[0]):
        assert axes.get_ylim()[0] == 0
    assert pair.axes[0].get_xscale() == "log"  # batch size doubles: its axis stays log


def test_ramp_axes_start_at_zero(figures):
    import json

    stages = [
        {"concurrency": c, "errors": 0, "p50_ms": 50.0 + c, "p99_ms": 60.0 + c,
         "requests_per_s": 500.0 + c}
        for c in (1, 2, 4)
    ]  # fmt: skip
    ramp = _rows().iloc[:1].assign(stages_json=json.dumps(stages), sla_p99_ms=80.0)
    report_plots.plot_ramp(ramp, "bert_base")
    (figure,) = figures
    assert [axes.get_ylim()[0] for axes in figure.axes] == [0, 0]


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
    built = build_report(_rows(), "s1", None)  # no SLA: the Pareto front shows the open row
    assert "| open |" in built.markdown and "<td>open</td>" in built.html
    assert built.markdown.count(OPEN_NOTE) == 1 and f"at least {P99_BOUNDED_N}" in OPEN_NOTE
    assert "too few requests to bound the percentile" in OPEN_NOTE
    bounded = _rows().assign(latency_ms_p99_hi=lambda f: f["latency_ms_p99"] * 1.05)
    assert OPEN_NOTE not in build_report(bounded, "s1", None).markdown


def test_a_provisional_row_says_how_many_requests_it_had_and_would_need():
    frame = _rows().assign(latency_ms_p99_hi=None, n=150)
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
    frame = _rows()
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
