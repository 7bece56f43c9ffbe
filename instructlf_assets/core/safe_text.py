"""Untrusted text made safe to show: as one markdown table cell in the Dagster UI, or as one terminal line.

Document text, proposed properties, factor names and failure reasons come from corpora and from a language model,
so any of them may carry markup. Two functions, one per destination, and every such piece of text goes through one:

- `escape_markdown_cell`: the text renders as the same literal characters and as nothing else. Every character
  markdown or HTML could read as syntax (`| [ ] ( ) ! < > & * _ ` ~ # \\ { } :` and leading list or heading
  markers) becomes a numeric character reference, which CommonMark and GFM render as that character and never as
  markup; line breaks become spaces, so a cell cannot end its table row. GFM also turns bare `https://...`,
  `www....` and `name@host` in the rendered text into links (the Dagster UI does, after decoding references), so
  an invisible word joiner (U+2060) goes after the scheme, the `www` and every `@`. No tag, link, image, code
  span or autolink survives, and a table keeps its column count.
- `safe_terminal_text`: ANSI escape sequences and control characters are removed, so a property cannot move the
  cursor, recolour, retitle or clear the user's terminal.

Both also drop the invisible bidirectional controls that make text display in another order than it reads.
"""

from __future__ import annotations

import re

# Characters markdown (CommonMark + GFM tables, strikethrough, autolinks) or HTML may read as syntax anywhere.
_MARKDOWN_SPECIAL = set("|[]()!<>&*_`~#\\{}:\"'$")
# Characters that are syntax only at the start of a line or cell: list bullets, headings underlines, quotes.
_LEADING_SPECIAL = set("-+=>")
_ORDERED_MARKER = re.compile(r"^(\d{1,9})([.)])(?=\s|$)")
# What GFM autolinks in plain text: `http(s)://`, `ftp://`, `www.`, and e-mail addresses around `@`.
_AUTOLINK_START = re.compile(r"(?:https?|ftps?|mailto|xmpp)(?=:)|www(?=\.)|@", re.IGNORECASE)
WORD_JOINER = "\u2060"
_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\r\n\t\v\f\u0085\u2028\u2029]+")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# ESC-introduced sequences: CSI (`ESC [ ... final`), OSC/DCS/APC/PM/SOS strings (ended by BEL or ESC \), others.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)


def escape_markdown_cell(text: object, max_chars: int | None = None) -> str:
    """`text` as one markdown table cell (or inline span) that renders literally, on one line.

    `max_chars` bounds the visible text (cut before escaping, so no character reference is cut in half).
    """
    value = "" if text is None else str(text)
    value = _BIDI_CONTROLS.sub("", value)
    value = " ".join(_LINE_BREAKS.sub(" ", value).split())
    value = _CONTROLS.sub("", value)
    if max_chars is not None and len(value) > max_chars:
        value = value[: max(max_chars - 1, 0)].rstrip() + "…"
    out = [_reference(char) if char in _MARKDOWN_SPECIAL else char for char in value]
    if out and value[0] in _LEADING_SPECIAL:
        out[0] = _reference(value[0])
    ordered = _ORDERED_MARKER.match(value)
    if ordered:
        out[len(ordered.group(1))] = _reference(ordered.group(2))
    for start in _AUTOLINK_START.finditer(value):
        out[start.end() - 1] += WORD_JOINER
    return "".join(out)


def _reference(char: str) -> str:
    return f"&#{ord(char)};"


def safe_terminal_text(text: object, keep_newlines: bool = False) -> str:
    """`text` with ANSI escape sequences, control characters and bidi controls removed, for printing.

    Tabs become spaces; line breaks become spaces unless `keep_newlines` (then `\\r\\n` and `\\r` become `\\n`).
    """
    value = "" if text is None else str(text)
    value = _ANSI.sub("", value)
    value = _BIDI_CONTROLS.sub("", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    value = value.replace("\u2028", "\n").replace("\u2029", "\n").replace("\u0085", "\n")
    if not keep_newlines:
        value = value.replace("\n", " ")
    return "".join(char for char in value if char == "\n" or not _CONTROLS.match(char))
