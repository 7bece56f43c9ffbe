"""Candidate property phrases cut from a document, for the extractive (offline) proposer.

Properties are short, so candidates are clauses: sentences split at punctuation and at conjunctions that join
independent statements. Long clauses are cut into overlapping word windows so nothing exceeds a short phrase.
"""

from __future__ import annotations

import re

STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "by",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "my",
        "your",
        "our",
        "their",
        "me",
        "him",
        "her",
        "us",
        "them",
        "so",
        "very",
        "just",
        "also",
        "than",
        "then",
        "there",
        "here",
    ]
)
_SENTENCE = re.compile(r"[.!?;\n]+")
_CLAUSE = re.compile(r"[,:()\[\]\"]|\s(?:and|but|while|although|though|because|whereas|however)\s", re.IGNORECASE)
_WORDS = re.compile(r"[\w'’-]+")
_LEADING_FILLER = re.compile(r"^(?:the|a|an|this|that|these|those|it|its)\s+", re.IGNORECASE)


def normalize_phrase(text: str) -> str:
    """Canonical spelling used for exact-duplicate merging: lowercase, words only, no leading article."""
    words = _WORDS.findall(text.lower().replace("’", "'"))
    phrase = " ".join(words)
    previous = None
    while previous != phrase:
        previous, phrase = phrase, _LEADING_FILLER.sub("", phrase)
    return phrase.strip(" '-")


def candidate_phrases(text: str, min_words: int = 2, max_words: int = 10) -> list[str]:
    """Distinct normalised clauses (or windows of long clauses) in document order."""
    seen: dict[str, None] = {}
    for sentence in _SENTENCE.split(text):
        for clause in _CLAUSE.split(sentence):
            for phrase in _windows(normalize_phrase(clause).split(), min_words, max_words):
                seen.setdefault(phrase, None)
    return list(seen)


def _windows(words: list[str], min_words: int, max_words: int) -> list[str]:
    if len(words) < min_words:
        return []
    if len(words) <= max_words:
        return [" ".join(words)]
    stride = max(1, max_words // 2)
    windows = []
    for start in range(0, len(words) - min_words + 1, stride):
        chunk = _trim_stopwords(words[start : start + max_words])
        if len(chunk) >= min_words:
            windows.append(" ".join(chunk))
        if start + max_words >= len(words):
            break
    return windows


def _trim_stopwords(words: list[str]) -> list[str]:
    start, end = 0, len(words)
    while start < end and words[start] in STOPWORDS:
        start += 1
    while end > start and words[end - 1] in STOPWORDS:
        end -= 1
    return words[start:end]
