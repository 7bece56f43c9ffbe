"""Small helpers that turn results into metadata a person reads in the Dagster UI."""

from __future__ import annotations

import base64
import io

import dagster as dg
import pandas as pd


def markdown_table(frame: pd.DataFrame, max_rows: int = 20) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(max_rows).to_markdown(index=False))


def factors_markdown(factors: pd.DataFrame, max_factors: int = 15, max_properties: int = 5) -> dg.MetadataValue:
    lines = ["| factor | name | top properties (weight) | TC share |", "|---|---|---|---|"]
    for row in factors.head(max_factors).itertuples():
        props = ", ".join(
            f"{text} ({weight:+.2f})"
            for text, weight in zip(row.top_properties[:max_properties], row.top_weights[:max_properties], strict=True)
        )
        lines.append(f"| {row.factor_id} | {row.name} | {props} | {row.tc_share:.1%} |")
    return dg.MetadataValue.md("\n".join(lines))


def png_markdown(figure: object, title: str) -> dg.MetadataValue:
    """Inline PNG in markdown metadata: the UI renders it in place."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")  # type: ignore[attr-defined]
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}](data:image/png;base64,{encoded})")
