"""From the union of proposals to a property vocabulary: normalise, merge near-duplicates, prune rare ones.

Merging is greedy by support: the most-proposed spelling of a cluster becomes its representative, and a phrase
joins the first representative whose cosine similarity reaches the threshold. Representatives are therefore
pairwise below the threshold by construction (a unit test asserts it; a data check could never fail).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .embedding import Embedder
from .phrases import normalize_phrase


@dataclass(frozen=True)
class DedupOptions:
    merge_threshold: float = 0.85
    min_support: int = 3
    max_properties: int = 2000


@dataclass(frozen=True)
class Vocabulary:
    """`table`: property_id, text, support, variants. `mapping`: normalised proposal -> property_id."""

    table: pd.DataFrame
    mapping: dict[str, str]
    n_raw: int
    n_normalised: int
    n_pruned: int


def build_vocabulary(proposals: pd.DataFrame, embed: Embedder, options: DedupOptions = DedupOptions()) -> Vocabulary:
    """`proposals` is the long table (doc_id, property); support counts distinct documents."""
    frame = proposals.assign(normalised=proposals["property"].map(normalize_phrase))
    frame = frame[frame["normalised"].str.len() > 0]
    support = frame.groupby("normalised")["doc_id"].nunique().sort_values(ascending=False, kind="stable")
    phrases = support.index.to_list()
    vectors = embed(phrases) if phrases else np.zeros((0, 1), dtype=np.float32)
    owner = _greedy_merge(vectors, options.merge_threshold)
    clusters = pd.DataFrame({"normalised": phrases, "owner": owner})
    doc_sets = frame.groupby("normalised")["doc_id"].agg(lambda ids: set(ids))
    rows = []
    for rep_index, members in clusters.groupby("owner", sort=False)["normalised"]:
        docs = set().union(*(doc_sets[m] for m in members))
        rows.append({"text": phrases[rep_index], "support": len(docs), "variants": sorted(members)})
    table = pd.DataFrame(rows, columns=["text", "support", "variants"])
    kept = table[table["support"] >= options.min_support]
    kept = kept.sort_values(["support", "text"], ascending=[False, True]).head(options.max_properties)
    kept = kept.reset_index(drop=True)
    kept.insert(0, "property_id", [f"p{i:05d}" for i in range(len(kept))])
    mapping = {
        variant: pid
        for pid, variants in zip(kept["property_id"], kept["variants"], strict=True)
        for variant in variants
    }
    return Vocabulary(kept, mapping, len(frame), len(phrases), len(table) - len(kept))


def _greedy_merge(vectors: np.ndarray, threshold: float, block: int = 512) -> np.ndarray:
    """owner[i] = index of the representative phrase i merges into (itself if it founds a cluster).

    Phrases arrive by falling support. Each block is first compared to the representatives found so far in one
    matrix product; only the phrases that match none of them are resolved one by one within the block.
    """
    n = len(vectors)
    owner = np.arange(n)
    reps = np.zeros((0, vectors.shape[1] if n else 1), dtype=np.float32)
    rep_index: list[int] = []
    for start in range(0, n, block):
        chunk = vectors[start : start + block]
        sims = chunk @ reps.T if len(rep_index) else np.full((len(chunk), 1), -np.inf)
        best = sims.argmax(axis=1)
        new_reps: list[int] = []
        for offset in range(len(chunk)):
            i = start + offset
            if sims[offset, best[offset]] >= threshold:
                owner[i] = rep_index[best[offset]]
                continue
            if new_reps:
                local = vectors[new_reps] @ vectors[i]
                j = int(np.argmax(local))
                if local[j] >= threshold:
                    owner[i] = new_reps[j]
                    continue
            new_reps.append(i)
        rep_index.extend(new_reps)
        reps = np.vstack([reps, vectors[new_reps]]) if new_reps else reps
    return owner


def map_proposals(proposals: pd.DataFrame, vocabulary: Vocabulary) -> pd.DataFrame:
    """Attach each proposal's property_id (NaN where its phrase was pruned)."""
    normalised = proposals["property"].map(normalize_phrase)
    return proposals.assign(property_id=normalised.map(vocabulary.mapping))
