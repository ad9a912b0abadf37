"""The Markdown the report's text blocks are written in, as HTML: the small subset report.md
uses (no third-party renderer: this is all a report paragraph needs, and every byte of the
input is escaped before any tag is made, so text cannot inject markup into the page).

Inline: `**strong**`, `*emphasis*`, `` `code` `` (any run of backticks), `[label](url)`
(http, https, mailto, a relative path or an #anchor; any other scheme stays text), and
backslash escapes of punctuation. `_` is never emphasis: model and column names are full of
it (bert_tiny, latency_ms_p99). Blocks, one per run of lines between blank lines: a list
(every line `- `, `* ` or `1. `; an indented line continues its item), a pipe table (a header
row, a `|---|` rule, rows) or a paragraph. Headings are not parsed: a `#` at a line's start
in a paragraph is text (Heading blocks make headings).
"""

from __future__ import annotations

import html
import re

INLINE = re.compile(
    r"\\(?P<escaped>[!-/:-@\[-`{-~])"  # a backslash before ASCII punctuation: that character
    r"|(?P<ticks>`+)(?P<code>.+?)(?<!`)(?P=ticks)(?!`)"
    r"|\*\*(?=\S)(?P<strong>.+?)(?<=\S)\*\*"
    r"|(?<![\w*])\*(?=[^\s*])(?P<em>[^*]+?)(?<=\S)\*(?![\w*])"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>[^()\s]+)\)",
    re.S,
)
SAFE_URL = re.compile(r"(https?://|mailto:|#|[^:]*$)", re.I)  # no javascript: or data:
BULLET = re.compile(r"^[-*] +")
NUMBERED = re.compile(r"^\d{1,9}[.)] +")
RULE_CELL = re.compile(r"^\s*:?-+:?\s*$")


def inline(text: str) -> str:
    """One line's (or paragraph's) inline Markdown as HTML; everything else escaped."""
    out: list[str] = []
    at = 0
    for match in INLINE.finditer(text):
        out.append(html.escape(text[at : match.start()]))
        at = match.end()
        if (escaped := match["escaped"]) is not None:
            out.append(html.escape(escaped))
        elif match["code"] is not None:
            code = match["code"]
            if len(code) > 2 and code[0] == code[-1] == " " and code.strip():
                code = code[1:-1]  # CommonMark: one space each side lets code start with `
            out.append(f"<code>{html.escape(code)}</code>")
        elif match["strong"] is not None:
            out.append(f"<strong>{inline(match['strong'])}</strong>")
        elif match["em"] is not None:
            out.append(f"<em>{inline(match['em'])}</em>")
        elif SAFE_URL.match(url := match["url"]):
            out.append(f'<a href="{html.escape(url)}">{inline(match["label"])}</a>')
        else:  # an unsafe scheme: the whole link as the text it was
            out.append(html.escape(match[0]))
    out.append(html.escape(text[at:]))
    return "".join(out)


def _list(lines: list[str], marker: re.Pattern[str], tag: str) -> str | None:
    """Lines as one list's items, or None when the first line is no item of this kind."""
    items: list[str] = []
    for line in lines:
        if found := marker.match(line):
            items.append(line[found.end() :])
        elif items and line[:1] in (" ", "\t"):
            items[-1] += " " + line.strip()  # a wrapped item
        else:
            return None
    return f"<{tag}>" + "".join(f"<li>{inline(item)}</li>" for item in items) + f"</{tag}>"


def _cells(line: str) -> list[str]:
    """A pipe-table row's cells; `\\|` is a pipe inside a cell."""
    row = line.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)]


def _table(lines: list[str]) -> str | None:
    """A pipe table (header, rule, rows), or None when the lines are not one."""
    if len(lines) < 2 or not all(line.lstrip().startswith("|") for line in lines):
        return None
    header, rule, rows = _cells(lines[0]), _cells(lines[1]), [_cells(x) for x in lines[2:]]
    if len(rule) != len(header) or not all(RULE_CELL.match(cell) for cell in rule):
        return None
    head = "".join(f"<th>{inline(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def blocks(text: str) -> str:
    """A text block's Markdown as HTML: lists, pipe tables and paragraphs."""
    out = []
    for chunk in re.split(r"\n\s*\n", text.strip("\n")):
        lines = [line.rstrip() for line in chunk.split("\n") if line.strip()]
        if not lines:
            continue
        out.append(
            _list(lines, BULLET, "ul")
            or _list(lines, NUMBERED, "ol")
            or _table(lines)
            or f"<p>{inline(' '.join(line.strip() for line in lines))}</p>"
        )
    return "".join(out)
