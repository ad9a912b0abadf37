"""Report blocks render to Markdown and HTML each on their own: text that looks like Markdown
(a `|` in a cell, a `#` at a line's start) keeps its place in the HTML."""

from __future__ import annotations

import pandas as pd

from bench.results.document import Figure, Heading, Table, Text, to_html, to_markdown


def test_a_pipe_in_a_cell_is_one_cell_in_both_outputs() -> None:
    table = Table(pd.DataFrame({"engine": ["http|served"], "p99": [12.3456], "gone": [None]}))
    assert "| http\\|served | 12.35 |  |" in table.markdown()
    page = to_html([table], {})
    assert "<td>http|served</td><td>12.35</td><td></td>" in page
    assert page.count("<td>") == 3


def test_text_that_looks_like_markup_stays_text_and_is_escaped() -> None:
    blocks = [Heading("Report", level=1), Text("## not a heading <b>"), Figure("a.png", "A")]
    page = to_html(blocks, {"a.png": b"\x89PNG"})
    assert "<h1>Report</h1><p>## not a heading &lt;b&gt;</p>" in page
    assert 'alt="a.png" src="data:image/png;base64,iVBORw==' in page
    assert to_markdown(blocks) == "# Report\n\n## not a heading <b>\n\n![A](a.png)\n"
