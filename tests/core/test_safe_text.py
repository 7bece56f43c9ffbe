"""Hostile text through the two escaping functions: rendered by a CommonMark + GFM-tables renderer, it is text."""

from __future__ import annotations

import html
import re

import pytest

from instructlf_assets.core.safe_text import WORD_JOINER, escape_markdown_cell, safe_terminal_text

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(document.cookie)</script>",
    "[click](javascript:alert(1))",
    "![x](https://evil.example/pixel.png)",
    "a | b | c",
    "line one\nline two\r\n| injected | row |",
    "`code` and ```fence```",
    "# heading",
    "- bullet",
    "> quote",
    "1. ordered",
    "**bold** _it_ ~~gone~~",
    "&lt;img src=x onerror=alert(1)&gt;",
    "<https://evil.example>",
    "https://evil.example/a and www.evil.example",
    "\\| escaped pipe \\",
    "[ref]: javascript:alert(1)",
    'a" onmouseover="alert(1)',
    "\u202eevil\u202c reversed",
    "nul\x00 and bell\x07",
]


def render_table(cells: list[str]) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    header = "| " + " | ".join(f"c{i}" for i in range(len(cells))) + " |"
    rule = "|" + "---|" * len(cells)
    row = "| " + " | ".join(escape_markdown_cell(c) for c in cells) + " |"
    return (
        markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough").render(f"{header}\n{rule}\n{row}")
    )


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_renders_as_itself_in_one_cell_of_an_intact_table(text):
    rendered = render_table(["id", text, "tail"])
    rows = re.findall(r"<tr>(.*?)</tr>", rendered, re.DOTALL)
    assert len(rows) == 2, rendered
    assert [len(re.findall(r"<t[hd]>", row)) for row in rows] == [3, 3], rendered
    cell = re.findall(r"<td>(.*?)</td>", rows[1], re.DOTALL)[1]
    tags = set(re.findall(r"<\s*([a-z]+)", cell, re.IGNORECASE))
    assert not tags, f"markup survived: {tags} in {cell}"
    expected = " ".join(re.sub("[\u202e\u202c\x00\x07]", "", text).split())
    assert html.unescape(cell).replace(WORD_JOINER, "") == expected, "the cell must show exactly the text, as text"


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_cells_carry_no_raw_syntax(text):
    escaped = escape_markdown_cell(text)
    for raw in ("<", ">", "|", "](", "`", "\n", "\r", "javascript:", "www."):
        assert raw not in escaped


@pytest.mark.parametrize(
    "text", ["see https://evil.example/x", "HTTP://evil.example", "www.evil.example", "mail me@evil.example"]
)
def test_bare_urls_and_addresses_cannot_become_autolinks(text):
    shown = html.unescape(escape_markdown_cell(text))
    assert shown.replace(WORD_JOINER, "") == text
    assert not re.search(r"(?i)(https?://|www\.|@[\w-])", shown), "GFM would link it"


def test_plain_words_stay_readable():
    assert escape_markdown_cell("Surprising ending, well-made plot") == "Surprising ending, well-made plot"
    assert escape_markdown_cell(None) == ""
    assert escape_markdown_cell(3.5) == "3.5"


def test_long_text_is_cut_before_escaping():
    escaped = escape_markdown_cell("<" * 50, max_chars=10)
    assert escaped == "&#60;" * 9 + "…"


ANSI_HOSTILE = [
    ("\x1b[31mred\x1b[0m text", "red text"),
    ("\x1b]0;new window title\x07name", "name"),
    ("\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\", "link"),
    ("clear\x1b[2J\x1b[H screen", "clear screen"),
    ("over\rwrite", "over write"),
    ("back\x08\x08space", "backspace"),
    ("8-bit \x9b31mcsi", "8-bit csi"),
    ("bidi \u202eevil", "bidi evil"),
    ("tab\tand\nnewline", "tab and newline"),
]


@pytest.mark.parametrize(("text", "expected"), ANSI_HOSTILE)
def test_terminal_text_has_no_escape_sequences_or_controls(text, expected):
    safe = safe_terminal_text(text)
    assert safe == expected
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", safe)


def test_terminal_text_may_keep_line_breaks():
    assert safe_terminal_text("a\r\nb\x1b[1m\nc", keep_newlines=True) == "a\nb\nc"
