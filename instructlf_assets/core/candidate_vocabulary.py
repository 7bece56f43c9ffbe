"""A corpus-level candidate vocabulary for the offline proposer: phrases that recur, not clauses that do not.

Extracted clauses are too specific to recur (Bills: 3,756 of 4,144 distinct proposals fell under the support
floor). Here the candidates are the word 1-3-grams that at least `min_df` training documents state and that
neither start nor end with a stop word, so "department of health" survives whole and "of health" never appears.
They are ranked by relevance to the goal and by how concentrated their documents are in embedding space (a
phrase every kind of document states, like "policy act", separates nothing), then diversified by maximal
marginal relevance. Each document proposes the kept candidates it states, most similar to it first. Like the
clause proposer it cannot invent a property: a proposal is always a phrase of the document.

Where a document grows by steps and its newest step is what the goal asks about (an agent's state: the task and
its trajectory so far), `propose_from_last_lines` has each document propose only what its newest lines state.
The vocabulary still comes from whole documents; only the pairs the compatibility model learns from change.
Whole-state proposals are dominated by the task's objects, which every state of a game shares, so the model
learns nothing that tells one step from the next (ALFWorld: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from .embedding import Embedder
from .offline_proposer import ScoredPhrase
from .phrases import STOPWORDS

# Function words the stop lists miss: a phrase that starts or ends with one ("amends the internal", "including
# health") is not a property a person would name. They may still sit inside a phrase ("secretary of health").
_EDGE_FILLER = frozenset(
    [
        "amend",
        "amends",
        "amended",
        "directs",
        "requires",
        "required",
        "authorizes",
        "prohibits",
        "provides",
        "provided",
        "establishes",
        "makes",
        "allows",
        "including",
        "regarding",
        "relating",
        "related",
        "respect",
        "purposes",
        "purpose",
        "pursuant",
        "subject",
        "applicable",
        "specified",
        "certain",
        "shall",
        "following",
        # Intensifiers: "pacing is really" and "acting is truly" say no more than "pacing" and "acting".
        "really",
        "truly",
        "genuinely",
        "merely",
        "quite",
        "fairly",
        "rather",
        "pretty",
        "simply",
        "actually",
        "definitely",
        "absolutely",
        "totally",
        "extremely",
        "incredibly",
        "highly",
        "somewhat",
        "slightly",
    ]
)
_STOPWORDS = frozenset(ENGLISH_STOP_WORDS) | STOPWORDS | _EDGE_FILLER
# Phrases never cross sentence or clause punctuation; digits end a phrase too ("title 38", "2007 amends").
_SEGMENT = re.compile(r"[.!?;:,()\[\]\"\n]+")
_WORDS = re.compile(r"[\w'’-]+")
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class CandidateOptions:
    max_words: int = 3
    min_df: int = 5
    max_df_share: float = 0.3
    vocabulary_size: int = 1000
    goal_weight: float = 0.5
    diversity: float = 0.3
    per_document: int = 15
    subsumed_share: float = 0.8
    propose_from_last_lines: int | None = None


@dataclass(frozen=True)
class CandidateVocabulary:
    """The kept phrases, best first, with what ranked them; `n_candidates` passed the document-frequency band."""

    phrases: list[str]
    vectors: np.ndarray
    goal_similarity: np.ndarray
    concentration: np.ndarray
    document_frequency: np.ndarray
    n_candidates: int


def phrase_ngrams(text: str, max_words: int = 3) -> set[str]:
    """Every 1..max_words-gram of the lowercased text that stays within one clause, contains no digit, and
    starts and ends with a content word of at least two letters."""
    grams: set[str] = set()
    for segment in _SEGMENT.split(text.lower().replace("’", "'")):
        words = [w.strip("'-") for w in _WORDS.findall(segment)]
        for start, first in enumerate(words):
            if not _is_edge(first):
                continue
            for end in range(start, min(start + max_words, len(words))):
                if _DIGIT.search(words[end]) or not words[end]:
                    break
                if _is_edge(words[end]):
                    grams.add(" ".join(words[start : end + 1]))
    return grams


def last_lines(text: str, n: int | None) -> str:
    """The text's last `n` non-blank lines (all of it when `n` is None)."""
    if n is None:
        return text
    if n < 1:
        raise ValueError(f"last_lines needs n >= 1 (or None for the whole text), got {n}")
    return "\n".join([line for line in text.splitlines() if line.strip()][-n:])


def _is_edge(word: str) -> bool:
    return len(word) >= 2 and word not in _STOPWORDS and not _DIGIT.search(word)


def build_candidate_vocabulary(
    train_texts: Sequence[str],
    goal: str,
    embed: Embedder,
    options: CandidateOptions = CandidateOptions(),
    train_vectors: np.ndarray | None = None,
) -> CandidateVocabulary:
    """Candidates stated by min_df..max_df_share of the training documents, ranked, top `vocabulary_size` kept."""
    phrases, presence = _document_frequency_band(train_texts, options)
    if not phrases:
        empty = np.zeros(0, dtype=np.float32)
        return CandidateVocabulary([], np.zeros((0, 1), dtype=np.float32), empty, empty, empty, 0)
    doc_vectors = embed(list(train_texts)) if train_vectors is None else train_vectors
    vectors = embed(phrases)
    goal_similarity = vectors @ embed([goal])[0]
    concentration = _concentration(presence, doc_vectors)
    score = options.goal_weight * _zscore(goal_similarity) + (1 - options.goal_weight) * _zscore(concentration)
    kept = _mmr(score, vectors, options.vocabulary_size, options.diversity)
    return CandidateVocabulary(
        [phrases[i] for i in kept],
        vectors[kept],
        goal_similarity[kept],
        concentration[kept],
        np.asarray(presence.sum(axis=0)).ravel()[kept],
        len(phrases),
    )


def propose_candidates(
    texts: Sequence[str],
    vocabulary: CandidateVocabulary,
    embed: Embedder,
    options: CandidateOptions = CandidateOptions(),
    doc_vectors: np.ndarray | None = None,
) -> list[list[ScoredPhrase]]:
    """For each text, up to `per_document` vocabulary phrases it states (in its last `propose_from_last_lines`
    lines, when set), ranked by cosine with the whole text."""
    index = {phrase: i for i, phrase in enumerate(vocabulary.phrases)}
    if doc_vectors is None:
        doc_vectors = embed(list(texts)) if index else np.zeros((len(texts), 1), dtype=np.float32)
    proposals = []
    for text, doc_vector in zip(texts, doc_vectors, strict=True):
        stated = phrase_ngrams(last_lines(text, options.propose_from_last_lines), options.max_words)
        rows = np.array(sorted(index[g] for g in stated if g in index), dtype=int)
        similarity = vocabulary.vectors[rows] @ doc_vector if len(rows) else np.zeros(0)
        order = np.argsort(-similarity, kind="stable")[: options.per_document]
        proposals.append([ScoredPhrase(vocabulary.phrases[rows[i]], float(similarity[i])) for i in order])
    return proposals


def _document_frequency_band(texts: Sequence[str], options: CandidateOptions) -> tuple[list[str], sparse.csc_array]:
    """Phrases in the band, minus those a longer phrase covers (a sub-phrase stated almost only inside it adds
    a near-copy of the longer one's document set, and the longer one reads better), and the document x phrase
    presence matrix.

    Two passes over the texts, n-grams recomputed in the second, so memory holds the counts and the band, not
    every document's n-gram set at once (about a hundred strings per ALFWorld state, 60k states).
    """
    counts: dict[str, int] = {}
    for text in texts:
        for gram in phrase_ngrams(text, options.max_words):
            counts[gram] = counts.get(gram, 0) + 1
    ceiling = max(options.min_df, options.max_df_share * len(texts))
    band = {gram: n for gram, n in counts.items() if options.min_df <= n <= ceiling}
    covered = {
        sub
        for gram, n in band.items()
        for sub in _sub_phrases(gram)
        if sub in band and n >= options.subsumed_share * band[sub]
    }
    phrases = sorted(gram for gram in band if gram not in covered)
    column = {phrase: j for j, phrase in enumerate(phrases)}
    rows, cols = [], []
    del counts, band
    for i, text in enumerate(texts):
        for gram in phrase_ngrams(text, options.max_words):
            if gram in column:
                rows.append(i)
                cols.append(column[gram])
    presence = sparse.csc_array((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(texts), len(phrases)))
    return phrases, presence


def _sub_phrases(gram: str) -> list[str]:
    words = gram.split()
    return [" ".join(words[a:b]) for a in range(len(words)) for b in range(a + 1, len(words) + 1) if b - a < len(words)]


def _concentration(presence: sparse.csc_array, doc_vectors: np.ndarray) -> np.ndarray:
    """How much closer together a phrase's documents are than as many documents drawn at random.

    With unit document vectors e, corpus mean m and n of N documents drawn without replacement, the expected
    squared norm of their mean is |m|² + (1 - |m|²)/n · (N - n)/(N - 1). The excess over that, as a share of
    the corpus spread 1 - |m|², is ~0 for a phrase every kind of document states and grows with how much its
    documents sit in one region (one topic), whatever its frequency.
    """
    n_docs = doc_vectors.shape[0]
    df = np.asarray(presence.sum(axis=0)).ravel()
    means = (presence.T @ doc_vectors) / df[:, None]
    corpus = float(np.sum(doc_vectors.mean(axis=0) ** 2))
    spread = max(1.0 - corpus, 1e-6)
    expected = corpus + spread / df * (n_docs - df) / max(n_docs - 1, 1)
    return ((np.sum(means**2, axis=1) - expected) / spread).astype(np.float32)


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    return (values - values.mean()) / spread if spread > 0 else np.zeros_like(values)


def _mmr(score: np.ndarray, vectors: np.ndarray, size: int, diversity: float) -> np.ndarray:
    """Greedy maximal marginal relevance over the best 4 x size candidates; score is rescaled to [0, 1] so it
    weighs against cosine redundancy on the same scale."""
    pool = np.argsort(-score, kind="stable")[: 4 * size]
    relevance = score[pool]
    relevance = (relevance - relevance.min()) / max(float(np.ptp(relevance)), 1e-9)
    pool_vectors = vectors[pool]
    redundancy = np.zeros(len(pool), dtype=np.float32)
    available = np.ones(len(pool), dtype=bool)
    chosen: list[int] = []
    for _ in range(min(size, len(pool))):
        gain = np.where(available, (1 - diversity) * relevance - diversity * redundancy, -np.inf)
        best = int(np.argmax(gain))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, pool_vectors @ pool_vectors[best])
    return pool[np.array(chosen, dtype=int)]
