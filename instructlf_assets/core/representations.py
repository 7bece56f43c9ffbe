"""Document representations compared in every downstream protocol: Instruct-LF's and the baselines'.

Unsupervised baselines (TF-IDF, LDA) are fitted on the training documents only, like CorEx, so no
representation has seen the evaluation documents' statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer


def unit_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalised rows (zero rows stay zero), so a dot product is a cosine similarity."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


_ROW_BLOCK = 8192


def standardised(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Columns z-scored with training statistics, rows normalised: every factor or property weighs the same.

    Block by block, so the memory is the result's (plus one block), not four temporary copies of the matrix:
    60k ALFWorld states x 1,000 properties is 250 MB a copy.
    """
    rows = np.flatnonzero(train)
    total = np.zeros(x.shape[1], dtype=np.float64)
    squares = np.zeros(x.shape[1], dtype=np.float64)
    for start in range(0, len(rows), _ROW_BLOCK):
        block = np.asarray(x[rows[start : start + _ROW_BLOCK]], dtype=np.float64)
        total += block.sum(axis=0)
        squares += (block**2).sum(axis=0)
    mean = total / max(len(rows), 1)
    std = np.sqrt(np.maximum(squares / max(len(rows), 1) - mean**2, 0.0))
    scale = np.where(std < 1e-12, 1.0, std).astype(np.float32)
    mean = mean.astype(np.float32)
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], _ROW_BLOCK):
        out[start : start + _ROW_BLOCK] = unit_rows((np.asarray(x[start : start + _ROW_BLOCK]) - mean) / scale)
    return out


def tfidf_features(texts: Sequence[str], train: np.ndarray, max_features: int = 20_000):
    """Sparse, L2-normalised TF-IDF of unigrams and bigrams."""
    vectorizer = TfidfVectorizer(max_features=max_features, ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    vectorizer.fit([t for t, keep in zip(texts, train, strict=True) if keep])
    return vectorizer.transform(texts).tocsr()


def lda_features(texts: Sequence[str], train: np.ndarray, n_topics: int = 20, seed: int = 0) -> np.ndarray:
    """Topic proportions of a scikit-learn LDA (online variational Bayes), fitted on the training texts."""
    counts = CountVectorizer(max_features=5_000, stop_words="english", min_df=2)
    counts.fit([t for t, keep in zip(texts, train, strict=True) if keep])
    matrix = counts.transform(texts)
    lda = LatentDirichletAllocation(n_components=n_topics, learning_method="online", max_iter=10, random_state=seed)
    lda.fit(matrix[np.flatnonzero(train)])
    return lda.transform(matrix).astype(np.float32)


def bertopic_installed() -> bool:
    """BERTopic is the `peers` extra: the paper's topic-model peer, added as a baseline when it is there."""
    import importlib.util

    return importlib.util.find_spec("bertopic") is not None


MIN_BERTOPIC_DOCUMENTS = 50  # UMAP's 15 neighbours and HDBSCAN's clusters of 10 need a few times that


def bertopic_features(
    texts: Sequence[str], train: np.ndarray, embeddings: np.ndarray, seed: int = 0
) -> np.ndarray | None:
    """Each document's BERTopic topic distribution, the model fitted on the training texts.

    BERTopic's defaults (UMAP to 5 dimensions, HDBSCAN, c-TF-IDF) with a fixed UMAP seed, and the embeddings the
    other stages already computed with the same encoder, so it costs no encoder pass of its own. The distribution
    (`approximate_distribution`) is BERTopic's soft document-topic matrix; documents HDBSCAN calls outliers still
    get one. None when there are too few training documents, or HDBSCAN finds no topic: no row, not a fake one.
    """
    from bertopic import BERTopic
    from umap import UMAP

    texts = list(texts)
    rows = np.flatnonzero(train)
    if len(rows) < MIN_BERTOPIC_DOCUMENTS:
        return None
    umap = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    model = BERTopic(umap_model=umap, embedding_model=None, calculate_probabilities=False, verbose=False)
    model.fit([texts[i] for i in rows], embeddings=np.asarray(embeddings)[rows])
    if not set(model.topics_) - {-1}:
        return None
    # A batch's token windows x topics similarity is dense, and the topics grow with the corpus: small batches.
    distribution, _ = model.approximate_distribution(texts, batch_size=250)
    return np.asarray(distribution, dtype=np.float32)


def fit_baselines(
    texts: Sequence[str],
    train: np.ndarray,
    embeddings: np.ndarray,
    n_topics: int,
    seed: int = 0,
    bertopic: bool = False,
) -> dict[str, object]:
    """Every baseline representation of the corpus, fitted once on its training rows (the protocols only read them).

    `embeddings` are the base encoder's (the `embeddings` baseline itself); LDA gets `n_topics`, the factors' count.
    """
    features: dict[str, object] = {
        "embeddings": np.asarray(embeddings, dtype=np.float32),
        "tfidf": tfidf_features(texts, train),
        "lda": lda_features(texts, train, n_topics=n_topics, seed=seed),
    }
    if bertopic and (topics := bertopic_features(texts, train, embeddings, seed)) is not None:
        features["bertopic"] = topics
    return features
