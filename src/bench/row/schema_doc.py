"""docs/columns.md from the row schema (bench.row.schema.COLUMNS), so the page cannot
drift from it.

    python -m bench.row.schema_doc > docs/columns.md      (or `make docs`)

tests/unit/test_docs.py fails when the committed page differs from what this prints.
"""

from __future__ import annotations

from bench.row.schema import COLUMNS, SCHEMA_VERSION

# Characters that would end a table cell or start Markdown markup inside one.
_ESCAPES = str.maketrans({"\\": "\\\\", "|": "\\|", "*": "\\*", "<": "&lt;"})


def _cell(text: str) -> str:
    return " ".join(text.split()).translate(_ESCAPES)


def columns_markdown() -> str:
    """The Markdown page: title, how it is made, the schema version, one table row per column
    (name, Arrow type, meaning), in the schema's order."""
    lines = [
        "# Result row columns",
        "",
        "Generated from the row schema in `src/bench/row/schema.py` by "
        "`python -m bench.row.schema_doc > docs/columns.md` (`make docs`); "
        "do not edit it by hand.",
        "",
        f"Schema version: {SCHEMA_VERSION}. Every row of `aggregated.parquet` and of each "
        f"attempt file under `cells/` has these {len(COLUMNS)} columns, in this order; "
        "a value that does not apply is null.",
        "",
        "| column | type | meaning |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | `{type_}` | {_cell(meaning)} |" for name, type_, meaning in COLUMNS]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(columns_markdown(), end="")
