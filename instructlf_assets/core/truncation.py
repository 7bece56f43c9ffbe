"""Texts cut to a length at a word boundary.

A cut inside a word leaves a fragment ("oking quickly around you") that the offline proposer would count as a
phrase and a person could not read as one, so a long text also loses the partial word at its cut edge. A partial
word longer than `MAX_DROPPED_CHARS` (a URL, an encoded blob) is cut at the character instead, so a cut never
throws away more than that, and a text with no whitespace still fits the cap.
"""

from __future__ import annotations

import re
from typing import Literal

MAX_DROPPED_CHARS = 50
_PARTIAL_LAST_WORD = re.compile(r"\s\S*\Z")
_PARTIAL_FIRST_WORD = re.compile(r"\A\S*\s")


def cut_at_word(text: str, max_chars: int, keep: Literal["start", "end"] = "start") -> str:
    """At most `max_chars` characters of `text` from the kept end, never ending (or starting) inside a word."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    if len(text) <= max_chars:
        return text
    text = text.strip()
    if len(text) <= max_chars:
        return text
    if keep == "start":
        kept = text[:max_chars]
        partial = None if text[max_chars].isspace() else _PARTIAL_LAST_WORD.search(kept)
        if partial and len(kept) - partial.start() <= MAX_DROPPED_CHARS:
            kept = kept[: partial.start()]
        return kept.rstrip()
    kept = text[-max_chars:]
    partial = None if text[-max_chars - 1].isspace() else _PARTIAL_FIRST_WORD.match(kept)
    if partial and partial.end() <= MAX_DROPPED_CHARS:
        kept = kept[partial.end() :]
    return kept.lstrip()
