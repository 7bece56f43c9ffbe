"""Small helpers that turn results into metadata a person reads in the Dagster UI.

Every piece of text that came from a corpus or a language model (document text, properties, factor names,
failure reasons, even column names) goes through `escape_markdown_cell`, so it shows as text and cannot add
markup, links, images or table columns to the page.
"""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd

from .core.safe_text import escape_markdown_cell


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    """The first rows as a markdown table; numbers formatted as usual, every other cell escaped."""
    shown = frame.head(max_rows).copy()
    for column in shown.columns:
        values = shown[column]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            shown[column] = values.map(escape_markdown_cell).astype(object)
    shown.columns = [escape_markdown_cell(column) for column in shown.columns]
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def factors_markdown(factors: pd.DataFrame, max_factors: int = 15, max_properties: int = 5) -> dg.MetadataValue:
    lines = ["| factor | name | top properties (weight) | TC share |", "|---|---|---|---|"]
    for row in factors.head(max_factors).itertuples():
        props = ", ".join(
            f"{escape_markdown_cell(text)} ({weight:+.2f})"
            for text, weight in zip(row.top_properties[:max_properties], row.top_weights[:max_properties], strict=True)
        )
        factor, name = escape_markdown_cell(row.factor_id), escape_markdown_cell(row.name)
        lines.append(f"| {factor} | {name} | {props} | {row.tc_share:.1%} |")
    return dg.MetadataValue.md("\n".join(lines))


def png_markdown(figure: object, title: str) -> dg.MetadataValue:
    """Inline PNG in markdown metadata: the UI renders it in place."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    encoded = base64.b64encode(buffer.getvalue()).decode()
    alt = escape_markdown_cell(title)
    return dg.MetadataValue.md(f"**{alt}**\n\n![{alt}](data:image/png;base64,{encoded})")
