"""Texts cut to a length at a word boundary.

A cut inside a word leaves a fragment ("oking quickly around you") that the offline proposer would count as a
phrase and a person could not read as one, so a long text loses the partial word at its cut edge as well. A text
with no whitespace inside the kept span is cut at the character: it must still fit the cap.
"""

from __future__ import annotations

from typing import Literal


def cut_at_word(text: str, max_chars: int, keep: Literal["start", "end"] = "start") -> str:
    """At most `max_chars` characters of `text` from the kept end, never ending (or starting) inside a word."""
    if len(text) <= max_chars:
        return text
    if keep == "start":
        kept = text[:max_chars]
        if not text[max_chars].isspace():
            cut = max(kept.rfind(" "), kept.rfind("\n"), kept.rfind("\t"))
            kept = kept[:cut] if cut > 0 else kept
        return kept.rstrip()
    kept = text[-max_chars:]
    if not text[-max_chars - 1].isspace():
        starts = [i for i in (kept.find(" "), kept.find("\n"), kept.find("\t")) if i >= 0]
        kept = kept[min(starts) + 1 :] if starts and min(starts) + 1 < len(kept) else kept
    return kept.lstrip()
