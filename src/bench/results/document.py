"""A report as a list of blocks (headings, paragraphs, tables, figures), each rendered both
to Markdown (report.md) and to HTML (index.html). A table's cells and a figure's file are
data, rendered to each output on its own, so a `|` in a cell cannot change the page's shape;
a Text block's prose is Markdown (bold, code spans, links, lists), which the HTML renders
(bench.results.markup) rather than showing the asterisks and backticks."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass

import pandas as pd

from bench.results import markup

# Short headers for the HTML tables (the column's name stays in each header's tooltip and in
# report.md), so a table of every figure fits a page
SHORT_HEADERS = {
    "batch_size": "batch",
    "tp_degree": "TP",
    "latency_ms_p50": "P50 ms",
    "latency_ms_p99": "P99 ms",
    "latency_ms_p99_hi": "P99 upper ms",
    "inferences_per_s": "inf/s",
    "usd_per_million_inferences": "$/M inf",
    "ttft_ms_p99": "TTFT P99 ms",
    "tpot_ms_p99": "TPOT P99 ms",
    "usd_per_million_output_tokens": "$/M out tokens",
    "misses_by_ms": "misses by ms",
}
STYLE = (  # wide tables scroll inside their own box, the page keeps its width
    "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
    ".wide{overflow-x:auto}table{border-collapse:collapse;font-size:12px}"
    "td,th{border:1px solid #ccc;padding:2px 5px;white-space:nowrap}"
    "th{background:#f3f3f3}img{max-width:100%}"
    "figure{margin:1.5em 0}figcaption{max-width:60em;font-size:14px;color:#333}"
    "code{background:#f3f3f3;padding:0 2px}"
)
OPEN = "open"  # an interval end the sample count cannot give (see report.OPEN_NOTE)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2

    def markdown(self) -> str:
        return f"{'#' * self.level} {self.text}"

    def html(self, images: dict[str, bytes]) -> str:
        return f"<h{self.level}>{markup.inline(self.text)}</h{self.level}>"


@dataclass(frozen=True)
class Text:
    text: str

    def markdown(self) -> str:
        return self.text

    def html(self, images: dict[str, bytes]) -> str:
        return markup.blocks(self.text)


@dataclass(frozen=True, eq=False)
class Table:
    frame: pd.DataFrame

    def open_ends(self) -> pd.DataFrame:
        """Where an interval end (a `<figure>_lo` or `<figure>_hi` column beside `<figure>`)
        is absent while its estimate is there: the sample left that end open. A failed row,
        with no estimate either, is blank, not open."""
        frame = self.frame
        flags = pd.DataFrame(False, index=frame.index, columns=frame.columns)
        for column in frame.columns:
            figure = str(column)[:-3]
            if str(column).endswith(("_lo", "_hi")) and figure in frame.columns:
                flags[column] = frame[column].isna() & frame[figure].notna()
        return flags

    def has_open(self) -> bool:
        return bool(self.open_ends().to_numpy().any())

    def cells(self) -> pd.DataFrame:
        """Every value as text: floats to 4 significant digits, an open interval end "open",
        any other absent figure blank."""
        shown = self.frame.copy()
        for column in shown.select_dtypes("float").columns:
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
        text = shown.astype(object).where(shown.notna(), "").astype(str)
        return text.mask(self.open_ends(), OPEN)

    def markdown(self) -> str:
        if self.frame.empty:
            return "(none)"
        shown = self.cells().apply(lambda column: column.str.replace("|", "\\|"))
        header = "| " + " | ".join(shown.columns) + " |"
        rule = "|" + "---|" * len(shown.columns)
        rows = ["| " + " | ".join(row) + " |" for row in shown.itertuples(index=False)]
        return "\n".join([header, rule, *rows])

    def html(self, images: dict[str, bytes]) -> str:
        if self.frame.empty:
            return "<p>(none)</p>"
        shown = self.cells()
        head = "".join(
            f"<th title='{html.escape(str(c))}'>{html.escape(SHORT_HEADERS.get(c, str(c)))}</th>"
            for c in shown.columns
        )
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in shown.itertuples(index=False)
        )
        return (
            f"<div class='wide'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )


@dataclass(frozen=True)
class Figure:
    """A PNG with its caption (Markdown: what it shows and how to read it) and its alt text
    (what it shows, for a reader who cannot see it). Without alt text the caption stands in
    for it in report.md and the file name in the HTML, as before captions were words."""

    name: str  # the PNG's file name beside report.md
    caption: str
    alt: str = ""

    def markdown(self) -> str:
        if not self.alt:
            return f"![{self.caption}]({self.name})"
        return f"![{_alt_markdown(self.alt)}]({self.name})\n\n{self.caption}"

    def html(self, images: dict[str, bytes]) -> str:
        data = base64.b64encode(images[self.name]).decode()
        alt = self.alt or self.name
        return (
            f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{markup.inline(self.caption)}</figcaption></figure>"
        )


def _alt_markdown(alt: str) -> str:
    """Alt text inside `![...]`: a bracket would end it early."""
    return alt.replace("[", "\\[").replace("]", "\\]")


Block = Heading | Text | Table | Figure


def to_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(block.markdown() for block in blocks) + "\n"


def to_html(blocks: list[Block], images: dict[str, bytes], title: str = "bench report") -> str:
    """One HTML page with the PNGs inlined."""
    body = "".join(block.html(images) for block in blocks)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )
