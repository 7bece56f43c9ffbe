"""The UI metadata helpers escape every piece of corpus or model text they put into markdown."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from instructlf_assets.metadata import factors_markdown, markdown_table

IMG = "<img src=x onerror=alert(1)>"
LINK = "[click](javascript:alert(1))"


def rendered_rows(markdown: str) -> list[list[str]]:
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown)
    return [
        re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.DOTALL)
        for row in re.findall(r"<tr>(.*?)</tr>", html, re.DOTALL)
    ]


def assert_inert(markdown: str, columns: int, rows: int) -> None:
    table = rendered_rows(markdown)
    assert len(table) == rows + 1 and {len(row) for row in table} == {columns}, table
    for row in table:
        for cell in row:
            assert not re.search(r"<\s*[a-z]", cell, re.IGNORECASE), f"markup in a cell: {cell}"


def test_failed_documents_table_with_hostile_reasons_keeps_its_shape():
    failed = pd.DataFrame(
        {
            "doc_id": ["d|1", "d2", "d3"],
            "reason": [IMG, f"unusable reply: {LINK}\n| x | y | z |", "![x](https://evil.example/p.png) `code`"],
        }
    )
    markdown = markdown_table(failed).value
    assert_inert(markdown, columns=2, rows=3)
    assert "](" not in markdown and "<img" not in markdown


def test_document_preview_keeps_numbers_formatted_and_text_escaped():
    documents = pd.DataFrame({"doc_id": ["a"], "text": [f"# Title\n{IMG}"], "stars": [4], "score": [0.25]})
    markdown = markdown_table(documents).value
    assert_inert(markdown, columns=4, rows=1)
    assert re.search(r"\|\s+4 \|\s+0\.25 \|", markdown), markdown


def test_factor_table_escapes_names_and_properties():
    factors = pd.DataFrame(
        {
            "factor_id": [0, 1],
            "name": [IMG, "plain | name"],
            "top_properties": [[LINK, "acting"], ["`rm -rf`", "a|b|c"]],
            "top_weights": [[0.9, 0.5], [0.4, -0.1]],
            "tc_share": [0.6, 0.4],
        }
    )
    markdown = factors_markdown(factors).value
    assert markdown.startswith("| factor | name | top properties (weight) | TC share |")
    assert_inert(markdown, columns=4, rows=2)
    assert "(+0.90)" in markdown and "60.0%" in markdown
    assert "](" not in markdown and "`" not in markdown
