"""Turn a chat model's free-text reply into a clean list of properties.

Models do not follow the requested format exactly: they wrap the list in prose, number it `1.`, `1)` or `(1)`,
use bullets, answer with a JSON array inside ```json fences, bold the key phrase and explain it after a colon.
This module accepts all of those and says, when it finds nothing usable, why, so a failed document is
diagnosable from the failure table alone.

Rules, in order:
1. A JSON array of strings (or of objects with a `property`/`name`/`text` field, or an object holding such an
   array) anywhere in the reply is the list.
2. Otherwise the list is the reply's numbered lines (`1.`, `1)`, `(1)`); if there are none, its bulleted lines
   (`-`, `*`, `•`, `+`), keeping only the least indented ones. Numbered lines win and deeper lines are
   dropped because bullets under an item are usually its explanation. Prose before and after is ignored.
3. Otherwise, the short lines after a line ending in `:` (a plain, unmarked list under a heading).
Each item is then cleaned: markdown emphasis, backticks, quotes and trailing punctuation are removed, and an
item of the form "Property: explanation" (or "Property — explanation") keeps only the part before the
separator when that part has at most `MAX_HEAD_WORDS` words; a longer head means the colon is inside a
sentence, so the item is kept whole. Items that end in a colon (headings), echo the goal back, or are longer
than `MAX_PROPERTY_CHARS` characters after cleaning are dropped, not truncated: a cut phrase is a different,
usually meaningless, property. Duplicates (ignoring case and spacing) keep their first occurrence.
Items with more than `MAX_ITEM_WORDS` words are dropped the same way, and only the first
`max_list_items(max_items)` items of a list are looked at, so a runaway list of thousands costs nothing.

A property must look like a property. The reply is the model's, but its input was a document anyone may have
written, so a reply can carry what the document injected. Any item taken from the list that breaks one of these
rules (see `hostile_reason`) fails the whole document, with the rule as the reason, instead of being dropped:
a reply that obeyed an injected instruction once may have been steered in its other items too.
- no URL (`scheme:`, `//`, `www.`, or a host name ending in a common top-level domain);
- no markup or code: no HTML tag or any of `< > { } | \\`, no markdown link or image (`](`, `![`), no code
  fence or backticks (one pair of backticks around the whole item is decoration, as a model may copy the
  requested format `1. property` literally);
- ordinary characters only: no control, bidirectional or other invisible format characters;
- nothing instruction-like: "ignore/disregard/forget/override ... instructions/prompt/rules", a role marker at
  the start (`system:`, `assistant:`, `user:`, `developer:`), or "system prompt", "new instructions",
  "you are now", "jailbreak", "developer mode". A deliberately short list: it catches the common injections
  without refusing ordinary phrases; the other rules catch most of what it misses.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

MAX_PROPERTY_CHARS = 120
MAX_ITEM_WORDS = 20  # the prompt asks for at most 10; twice that is a sentence, not a property
MAX_HEAD_WORDS = 8
MIN_LIST_ITEMS = 30
MAX_PLAIN_LINE_WORDS = 12
CHARS_PER_TOKEN = 4

_NUMBERED = re.compile(r"^\s*(?:\d{1,3}[.)]|\(\d{1,3}\))\s+(.+?)\s*$")
_BULLETED = re.compile(r"^\s*[-*•+‣◦]\s+(.+?)\s*$")
_FENCE = re.compile(r"^\s*```[\w-]*\s*$")
_SEPARATOR = re.compile(r"\s*:\s+|\s+[—–-]\s+")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")
_QUOTES = "\"'“”‘’«»"
_TRAILING = ".,;!?。 \t"
_JSON_FIELDS = ("property", "name", "text", "label", "item")
_MAX_JSON_STARTS = 50

_URL = re.compile(
    r"\b[a-z][a-z0-9+.-]{1,15}://|//[^\s/]+|\bwww\.|\b(?:javascript|data|vbscript|file|mailto):"
    r"|\b[a-z0-9-]+\.(?:com|net|org|io|ai|co|ru|cn|xyz|info|biz|ly|me|app|dev|site|online|top)\b",
    re.IGNORECASE,
)
_MARKUP_CHARS = set("<>{}|\\")
_MARKDOWN_LINK = re.compile(r"\]\s*\(|!\[")
_DECORATIVE_BACKTICKS = re.compile(r"`[^`]+`[.,;:!?]*")
_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}?\b(?:instructions?|prompts?|rules|directions|messages?)\b"
    r"|^\W*(?:system|assistant|user|developer)\s*:"
    r"|\b(?:system prompt|new instructions?|you are now|jailbreak|developer mode)\b",
    re.IGNORECASE,
)
_ALLOWED_FORMAT_CHARS = {"\u200c", "\u200d"}  # zero-width (non-)joiners: part of Persian and Indic spelling


def hostile_reason(item: str) -> str | None:
    """Which property rule a raw list item breaks (see the module docstring), or None when it looks like one."""
    text = item.strip()
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") and c not in _ALLOWED_FORMAT_CHARS for c in text):
        return "a control or invisible formatting character"
    if "`" in text and not _DECORATIVE_BACKTICKS.fullmatch(text):
        return "backticks or a code fence"
    if _MARKDOWN_LINK.search(text):
        return "a markdown link or image"
    if _URL.search(text):
        return "a URL"
    if _MARKUP_CHARS.intersection(text):
        return "markup characters (< > { } | \\)"
    if _INSTRUCTION.search(text):
        return "instruction-like text"
    return None


def max_list_items(max_items: int) -> int:
    """How many items of a list are looked at: enough to survive drops, bounded against runaway lists."""
    return max(MIN_LIST_ITEMS, 3 * max_items)


@dataclass
class ParsedReply:
    """`failure` is None when at least one property survived; otherwise it says what the reply lacked."""

    properties: list[str] = field(default_factory=list)
    failure: str | None = None


def estimate_tokens(text: str) -> int:
    """An estimate, not a count: ~4 characters per token holds for English with GPT-style tokenizers.

    Used only to tell the user roughly what a run will send before it sends it; billing uses the server's usage.
    """
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def parse_properties(reply: str, goal: str, max_items: int = 30, document: str | None = None) -> ParsedReply:
    """The reply's properties, cleaned, de-duplicated and capped at `max_items` (see module docstring).

    Given the document, a list written in another script (a model that switched to Chinese for an English
    review) is a failure: such properties never match the documents they should describe.
    """
    if not reply or not reply.strip():
        return ParsedReply(failure="empty reply")
    parsed = _parse(reply, goal, max_items)
    if parsed.failure is None and document is not None:
        listed, expected = dominant_script(" ".join(parsed.properties)), dominant_script(document)
        if listed and expected and listed != expected:
            return ParsedReply(failure=f"the list is in {listed} script but the document is in {expected} script")
    return parsed


MIN_LETTERS_FOR_SCRIPT = 8
_SCRIPT_ALIASES = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK"}


def dominant_script(text: str) -> str | None:
    """The Unicode script of most letters (LATIN, CYRILLIC, CJK, ...), or None for too little text to tell."""
    scripts = Counter(
        _SCRIPT_ALIASES.get(name.split()[0], name.split()[0])
        for name in (unicodedata.name(ch, "") for ch in text if ch.isalpha())
        if name
    )
    if scripts.total() < MIN_LETTERS_FOR_SCRIPT:
        return None
    return scripts.most_common(1)[0][0]


def _parse(reply: str, goal: str, max_items: int) -> ParsedReply:
    raw_items, source = _raw_items(reply)
    if not raw_items:
        return ParsedReply(failure=f"no numbered, bulleted or JSON list in the reply ({len(reply.strip())} chars)")
    raw_items = raw_items[: max_list_items(max_items)]
    for number, raw in enumerate(raw_items, start=1):
        reason = hostile_reason(raw)
        if reason is not None:
            return ParsedReply(failure=f"the reply carries injected content: {source} item {number} has {reason}")
    properties, dropped = _clean_all(raw_items, goal)
    if not properties:
        reasons = ", ".join(f"{count} {why}" for why, count in dropped.items() if count)
        return ParsedReply(failure=f"the {source} had {len(raw_items)} items but none was usable ({reasons})")
    return ParsedReply(properties=properties[:max_items])


def _raw_items(reply: str) -> tuple[list[str], str]:
    """The list items as written, and which kind of list they came from (for failure messages)."""
    from_json = _json_items(reply)
    if from_json is not None:
        return from_json, "JSON array"
    lines = [line for line in reply.splitlines() if not _FENCE.match(line)]
    for pattern, name in ((_NUMBERED, "numbered list"), (_BULLETED, "bulleted list")):
        matches = [m for m in map(pattern.match, lines) if m]
        if matches:
            return _outermost(matches), name
    return _plain_items(lines), "plain list"


def _outermost(matches: list[re.Match[str]]) -> list[str]:
    """Only the least indented items: deeper ones are sub-points explaining an item, not properties."""
    indent = min(len(m.string) - len(m.string.lstrip()) for m in matches)
    return [m.group(1) for m in matches if len(m.string) - len(m.string.lstrip()) == indent]


def _json_items(reply: str) -> list[str] | None:
    """Items of the first JSON array (or object holding one) in the reply that yields strings, else None.

    Decoding starts at each `[` or `{` and stops at the end of that value, so prose or a fence after it is fine.
    """
    decoder = json.JSONDecoder()
    starts = [i for i, char in enumerate(reply) if char in "[{"][:_MAX_JSON_STARTS]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(reply, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            value = next((v for v in value.values() if isinstance(v, list)), [])
        items = _strings(value) if isinstance(value, list) else []
        if items:
            return items
    return None


def _strings(values: list[object]) -> list[str]:
    out = []
    for value in values:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            text = next((value[k] for k in _JSON_FIELDS if isinstance(value.get(k), str)), None)
            if text is not None:
                out.append(text)
    return out


def _plain_items(lines: list[str]) -> list[str]:
    """Short unmarked lines following the last heading that ends with a colon."""
    headings = [i for i, line in enumerate(lines) if line.strip().endswith(":")]
    if not headings:
        return []
    items = []
    for line in lines[headings[-1] + 1 :]:
        text = line.strip()
        if not text:
            if items:
                break
            continue
        if len(text.split()) > MAX_PLAIN_LINE_WORDS:
            break
        items.append(text)
    return items


def _clean_all(raw_items: list[str], goal: str) -> tuple[list[str], dict[str, int]]:
    goal_key = _key(_strip_decoration(goal))
    seen: set[str] = set()
    kept: list[str] = []
    too_long = f"longer than {MAX_PROPERTY_CHARS} chars or {MAX_ITEM_WORDS} words"
    dropped = {"headings": 0, "echoed the goal": 0, too_long: 0, "duplicates": 0}
    for raw in raw_items:
        if _strip_decoration(raw).endswith(":"):
            dropped["headings"] += 1
            continue
        item = _clean(raw)
        key = _key(item)
        if not key:
            continue
        if goal_key and (goal_key in key or goal_key in _key(_strip_decoration(raw))):
            dropped["echoed the goal"] += 1
        elif len(item) > MAX_PROPERTY_CHARS or len(item.split()) > MAX_ITEM_WORDS:
            dropped[too_long] += 1
        elif key in seen:
            dropped["duplicates"] += 1
        else:
            seen.add(key)
            kept.append(item)
    return kept, dropped


def _clean(raw: str) -> str:
    text = _strip_decoration(raw)
    parts = _SEPARATOR.split(text, maxsplit=1)
    if len(parts) == 2 and parts[0] and len(parts[0].split()) <= MAX_HEAD_WORDS:
        text = _strip_decoration(parts[0])
    return text.rstrip(_TRAILING + ":").strip()


def _strip_decoration(text: str) -> str:
    """Remove markdown emphasis, surrounding quotes, trailing punctuation and repeated spaces."""
    text = _EMPHASIS.sub("", text)
    text = " ".join(text.split())
    previous = None
    while previous != text:
        previous = text
        text = text.strip().strip(_QUOTES).rstrip(_TRAILING).strip()
    return text


def strip_decoration(text: str) -> str:
    """A short phrase without markdown emphasis, surrounding quotes or trailing punctuation (factor names)."""
    return _strip_decoration(text)


def _key(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(_TRAILING)
