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


def standardised(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Columns z-scored with training statistics, rows normalised: every factor or property weighs the same."""
    x = np.asarray(x, dtype=np.float32)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)
    return unit_rows((x - mean) / np.where(std == 0, 1, std))


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
