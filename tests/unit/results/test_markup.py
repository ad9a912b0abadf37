"""bench.results.markup: the report's Markdown subset as HTML, every byte of the input escaped
before a tag is made, so text cannot put markup into the page."""

from __future__ import annotations

from bench.results.markup import blocks, inline


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


def test_code_spans_keep_their_content_literally():
    assert inline("`**not bold**`") == "<code>**not bold**</code>"
    assert inline("`` `x` ``") == "<code>`x`</code>"  # one space each side lets code start with `
    assert inline("a ` b") == "a ` b"  # an unclosed backtick is text


def test_emphasis_never_comes_from_underscores_or_stray_asterisks():
    assert inline("latency_ms_p99 and bert_tiny") == "latency_ms_p99 and bert_tiny"
    assert inline("2*3*4") == "2*3*4"  # inside a word: no emphasis
    assert inline("** spaced **") == "** spaced **"
    assert inline("an *aside* here") == "an <em>aside</em> here"
    assert inline("**bold *and* em**") == "<strong>bold <em>and</em> em</strong>"


def test_only_safe_links_become_anchors_and_their_urls_are_escaped():
    assert inline("[a](https://x.org/?a=1&b=2)") == '<a href="https://x.org/?a=1&amp;b=2">a</a>'
    assert inline("[mail](mailto:a@b.c)") == '<a href="mailto:a@b.c">mail</a>'
    assert inline("[top](#top)") == '<a href="#top">top</a>'
    assert inline("[v](vbscript:x)") == "[v](vbscript:x)"


def test_a_list_with_a_line_that_is_no_item_is_a_paragraph():
    assert blocks("- one\nnot an item") == "<p>- one not an item</p>"
    assert blocks("1) first\n2) second") == "<ol><li>first</li><li>second</li></ol>"
    assert blocks("\n\n  \n") == ""


def test_a_table_whose_rule_does_not_match_its_header_is_a_paragraph():
    assert blocks("| a | b |\n|---|\n| 1 | 2 |").startswith("<p>")
    assert blocks("| a |\n| :-: |\n| 1 |") == (
        "<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>1</td></tr></tbody></table>"
    )
