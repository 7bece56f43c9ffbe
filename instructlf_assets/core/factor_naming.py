"""Factor names a person would write: one chat call per factor, from its top properties and best documents.

Without a language model a factor is called after its two strongest properties ("acting / ending"), which reads
like a list, not a name. With one, each factor gets one request: the goal, its top properties (up to
`MAX_PROPERTIES_SHOWN`) and the opening `EXCERPT_CHARS` characters of its `N_EXCERPTS` highest-scoring training
documents, quoted like a proposal prompt quotes its document (`prompts.quote_document`: a document cannot close
its quote). The reply must be one short plain phrase; anything else keeps the top-property name, and the factor
records why (`naming_note`).

A name obeys the property rules of `proposal_parsing.hostile_reason` (no URL, markup, backticks, invisible
characters or instruction-like text, checked on every line of the reply), is one line, and has at most
`MAX_NAME_WORDS` words and `MAX_NAME_CHARS` characters once a "Name:" label and decoration are removed.

The factor table keeps the same columns whether or not a model named it: `name` (what is shown),
`top_property_name`, `named_by` ("llm MODEL" or "top properties") and `naming_note` (empty, or the reason).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from .prompts import Message, quote_document
from .proposal_parsing import hostile_reason, strip_decoration

MAX_PROPERTIES_SHOWN = 8
N_EXCERPTS = 3
EXCERPT_CHARS = 300
MAX_NAME_WORDS = 8
MAX_NAME_CHARS = 60
BY_TOP_PROPERTIES = "top properties"
NAMING_COLUMNS = ["name", "top_property_name", "named_by", "naming_note"]

NAMING_SYSTEM_PROMPT = (
    "You name the factors found in a collection of documents. A factor is a group of properties that tend to "
    "occur together in the same documents. You answer with one short name, the way a person would label it."
)
_LABEL = re.compile(r"^(?:factor\s+)?name\s*[:\-–—]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedName:
    """`name` is None when the reply is refused; `failure` then says why."""

    name: str | None
    failure: str | None = None


def excerpt(text: str, max_chars: int = EXCERPT_CHARS) -> str:
    """The document's opening, whitespace collapsed, cut at a word boundary with an ellipsis when longer."""
    flat = " ".join(str(text).split())
    if len(flat) <= max_chars:
        return flat
    cut = flat[:max_chars]
    head = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return f"{head}…"


def naming_messages(goal: str, properties: list[str], excerpts: list[str]) -> list[Message]:
    """System and user messages asking for one factor's name (see the module docstring)."""
    listed = "\n".join(f"- {' '.join(str(p).split())}" for p in properties[:MAX_PROPERTIES_SHOWN])
    quoted = "\n".join(quote_document(text) for text in excerpts)
    user = (
        f"Goal: {' '.join(goal.split())}\n\n"
        f"One factor groups these properties, strongest first:\n{listed}\n\n"
        f"The documents that score highest on this factor begin like this:\n{quoted}\n\n"
        f"Write one name for this factor: a plain phrase of at most {MAX_NAME_WORDS} words, related to the goal. "
        "Reply with the name only, on one line, without quotes or explanation."
    )
    return [{"role": "system", "content": NAMING_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_name(reply: str) -> ParsedName:
    """The name in a model's reply, or why it is refused (see the module docstring)."""
    lines = [line.strip() for line in (reply or "").splitlines() if line.strip()]
    if not lines:
        return ParsedName(None, "empty reply")
    for line in lines:
        reason = hostile_reason(line)
        if reason is not None:
            return ParsedName(None, f"the reply carries injected content: {reason}")
    if len(lines) > 1:
        return ParsedName(None, f"the reply has {len(lines)} lines, not one name")
    name = strip_decoration(_LABEL.sub("", strip_decoration(lines[0])))
    if not name:
        return ParsedName(None, "empty reply")
    if len(name.split()) > MAX_NAME_WORDS or len(name) > MAX_NAME_CHARS:
        return ParsedName(
            None, f"not a short name ({len(name.split())} words, {len(name)} chars; at most {MAX_NAME_WORDS} words)"
        )
    return ParsedName(name)


def top_documents(
    document_scores: pd.DataFrame, factor_id: str, texts: Mapping[object, str], k: int = N_EXCERPTS
) -> list[str]:
    """Texts of the `k` documents of `texts` (the training split) scoring highest on the factor, best first."""
    if factor_id not in document_scores.columns:
        return []
    scores = document_scores[["doc_id", factor_id]]
    scores = scores[scores["doc_id"].isin(list(texts))]
    best = scores.sort_values(factor_id, ascending=False, kind="stable").head(k)
    return [texts[doc_id] for doc_id in best["doc_id"]]


def naming_requests(
    factors: pd.DataFrame, document_scores: pd.DataFrame, train_texts: Mapping[object, str], goal: str
) -> dict[str, list[Message]]:
    """One request per factor that has properties, keyed by factor id; the prompt fixes the cache key."""
    requests: dict[str, list[Message]] = {}
    for row in factors.itertuples():
        properties = list(row.top_properties)
        if not properties:
            continue
        excerpts = [excerpt(text) for text in top_documents(document_scores, row.factor_id, train_texts)]
        requests[str(row.factor_id)] = naming_messages(goal, properties, excerpts)
    return requests


def apply_names(
    factors: pd.DataFrame,
    replies: Mapping[str, str] | None = None,
    failures: Mapping[str, str] | None = None,
    named_by: str = BY_TOP_PROPERTIES,
) -> pd.DataFrame:
    """`factors` with `NAMING_COLUMNS`: a reply's name where it is usable, else the top-property name and why.

    Called with no replies (no language model) every factor keeps its top-property name, with an empty note.
    """
    replies, failures = replies or {}, failures or {}
    top_names = list(factors["top_property_name"] if "top_property_name" in factors else factors["name"])
    chosen = [
        _choose(top_name, replies.get(factor_id), failures.get(factor_id, ""), named_by)
        for factor_id, top_name in zip(factors["factor_id"], top_names, strict=True)
    ]
    names, by, notes = (list(column) for column in zip(*chosen, strict=True)) if chosen else ([], [], [])
    return factors.assign(name=names, top_property_name=top_names, named_by=by, naming_note=notes)


def _choose(top_name: str, reply: str | None, failure: str, named_by: str) -> tuple[str, str, str]:
    """(name, named by, note) of one factor."""
    if reply is None:
        return top_name, BY_TOP_PROPERTIES, failure
    parsed = parse_name(reply)
    if parsed.name is None:
        return top_name, BY_TOP_PROPERTIES, f"name refused: {parsed.failure}"
    return parsed.name, named_by, ""
