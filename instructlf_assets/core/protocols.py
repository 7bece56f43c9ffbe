"""The paper's downstream protocols, for any representation of the documents.

Each takes dense (or sparse) feature matrices and labels and returns `Metric` rows, so factors and every
baseline go through exactly the same code on exactly the same split.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from .evaluation import Metric, binomial_se
from .paper_datasets import movie_key, normalise_action

CHUNK = 1024


def cosine_neighbours(queries, database, k: int) -> np.ndarray:
    """Indices of the k most similar database rows per query (rows must be L2-normalised), chunked."""
    k = min(k, database.shape[0])
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], CHUNK):
        sims = queries[start : start + CHUNK] @ database.T
        sims = np.asarray(sims.todense()) if hasattr(sims, "todense") else np.asarray(sims)
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[start : start + CHUNK] = np.take_along_axis(top, order, axis=1)
    return out


# --- Inspired: count-based kNN recommender -----------------------------------------------------------------------


def knn_rankings(neighbours: np.ndarray, train_movies: Sequence[list[str]], n: int, depth: int) -> list[list[str]]:
    """Each query's top-`depth` movies by votes of its `n` nearest training posts (ties: nearer posts first)."""
    rankings = []
    for row in neighbours[:, :n]:
        votes: Counter[str] = Counter()
        first_seen: dict[str, int] = {}
        for rank, index in enumerate(row):
            for movie in train_movies[index]:
                votes[movie] += 1
                first_seen.setdefault(movie, rank)
        ranked = sorted(votes, key=lambda movie: (-votes[movie], first_seen[movie]))
        rankings.append(ranked[:depth])
    return rankings


def hits_at(rankings: list[list[str]], targets: Sequence[list[str]], k: int) -> np.ndarray:
    return np.array([bool(set(ranking[:k]) & set(target)) for ranking, target in zip(rankings, targets, strict=True)])


def recommendation_metrics(
    method: str,
    train_x,
    train_movies: Sequence[list[str]],
    valid_x,
    valid_movies: Sequence[list[str]],
    test_x,
    test_movies: Sequence[list[str]],
    ks: Sequence[int],
    candidates: Sequence[int],
    split: str = "test",
) -> list[Metric]:
    """Tune N for Hit@20 on the valid rows, then report Hit@k (binomial standard errors) on the test rows.

    The chosen N is reported under the valid split, where it was chosen; the test rows decide nothing.
    """
    train_keys = [[movie_key(m) for m in movies] for movies in train_movies]
    depth = max(ks)
    deepest = max(candidates)
    valid_neighbours = cosine_neighbours(valid_x, train_x, deepest)
    tune_k = 20 if 20 in ks else max(ks)
    valid_keys = [[movie_key(m) for m in movies] for movies in valid_movies]
    scores = {
        n: hits_at(knn_rankings(valid_neighbours, train_keys, n, depth), valid_keys, tune_k).mean() for n in candidates
    }
    best_n = max(candidates, key=lambda n: (scores[n], -n))
    test_keys = [[movie_key(m) for m in movies] for movies in test_movies]
    rankings = knn_rankings(cosine_neighbours(test_x, train_x, best_n), train_keys, best_n, depth)
    metrics = [
        Metric(method, "tuned_neighbours", "valid", float(best_n), len(valid_keys)),
        # The score that chose N: optimistic, and the same for every method, so configurations are compared here.
        Metric(method, f"hit@{tune_k}", "valid", float(scores[best_n]), len(valid_keys),
               binomial_se(float(scores[best_n]), len(valid_keys))),
    ]  # fmt: skip
    for k in ks:
        hit = float(hits_at(rankings, test_keys, k).mean())
        metrics.append(Metric(method, f"hit@{k}", split, hit, len(test_keys), binomial_se(hit, len(test_keys))))
    return metrics


def popularity_metrics(
    train_movies: Sequence[list[str]], test_movies: Sequence[list[str]], ks: Sequence[int], split: str = "test"
) -> list[Metric]:
    """Recommend the most mentioned training movies to everyone."""
    counts = Counter(movie_key(m) for movies in train_movies for m in movies)
    ranking = [movie for movie, _ in counts.most_common(max(ks))]
    test_keys = [[movie_key(m) for m in movies] for movies in test_movies]
    metrics = []
    for k in ks:
        hit = float(hits_at([ranking] * len(test_keys), test_keys, k).mean())
        metrics.append(Metric("popularity", f"hit@{k}", split, hit, len(test_keys), binomial_se(hit, len(test_keys))))
    return metrics


def recommendation_upper_bound(
    train_movies: Sequence[list[str]], test_movies: Sequence[list[str]], split: str = "test"
) -> Metric:
    """Share of test posts whose target appears among the training movies: no kNN recommender can beat it."""
    vocabulary = {movie_key(m) for movies in train_movies for m in movies}
    reachable = np.array([any(movie_key(m) in vocabulary for m in movies) for movies in test_movies])
    share = float(reachable.mean()) if len(reachable) else float("nan")
    return Metric("upper_bound", "hit@any", split, share, len(reachable), binomial_se(share, len(reachable)))


# --- Bills: cross-validated probes --------------------------------------------------------------------------------


def frequent_classes(labels: np.ndarray, min_class_size: int) -> tuple[np.ndarray, int]:
    """Mask of documents whose class has at least `min_class_size` members, and the number of classes dropped."""
    values, counts = np.unique(labels, return_counts=True)
    keep = set(values[counts >= min_class_size])
    return np.array([label in keep for label in labels]), int((counts < min_class_size).sum())


PROBES = ("tree", "logreg")


def _probe(name: str, x, seed: int):
    return DecisionTreeClassifier(random_state=seed) if name == "tree" else _logistic(x, seed)


def probe_metrics(method: str, x, labels: np.ndarray, label_name: str, folds: int, seed: int = 0) -> list[Metric]:
    """Transductive: stratified k-fold over every document, as the paper's code does (`cv_*` metrics).

    The representation being probed was fitted without the labels but on the training split only, while the
    folds also test on the training documents, so this number is comparable to the paper's, not held out.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    metrics = []
    for probe_name in PROBES:
        scores = []
        for train, test in splitter.split(np.zeros(len(labels)), labels):
            model = _probe(probe_name, x, seed).fit(x[train], labels[train])
            scores.append(balanced_accuracy_score(labels[test], model.predict(x[test])))
        mean, se = float(np.mean(scores)), float(np.std(scores, ddof=1) / np.sqrt(len(scores)))
        metrics.append(Metric(method, f"cv_{probe_name}_balanced_accuracy", label_name, mean, len(labels), se, seed))
    return metrics


def held_out_probe_metrics(
    method: str,
    train_x,
    train_labels: np.ndarray,
    test_x,
    test_labels: np.ndarray,
    label_name: str,
    seed: int = 0,
    n_bootstrap: int = 200,
    metric_prefix: str = "",
) -> list[Metric]:
    """The headline: probes fitted on the training documents, scored on test documents no fit has seen.

    The standard error is a bootstrap over the test documents (balanced accuracy has no closed form). With
    `metric_prefix="valid_"` the same probes score the validation documents instead.
    """
    metrics = []
    for probe_name in PROBES:
        model = _probe(probe_name, train_x, seed).fit(train_x, train_labels)
        predicted = model.predict(test_x)
        value = float(balanced_accuracy_score(test_labels, predicted))
        se = bootstrap_se(test_labels, predicted, n_bootstrap, seed)
        metric = f"{metric_prefix}{probe_name}_balanced_accuracy"
        metrics.append(Metric(method, metric, label_name, value, len(test_labels), se, seed))
    return metrics


def bootstrap_se(truth: np.ndarray, predicted: np.ndarray, n_bootstrap: int = 200, seed: int = 0) -> float:
    """Standard error of balanced accuracy by resampling the evaluated documents."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    if n < 2:
        return float("nan")
    values = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, n, n)
        values.append(balanced_accuracy_score(truth[pick], predicted[pick]))
    return float(np.std(values, ddof=1))


def _logistic(x, seed: int):
    model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
    return model if hasattr(x, "tocsr") else make_pipeline(StandardScaler(), model)


def majority_probe_metrics(labels: np.ndarray, label_name: str, folds: int, seed: int = 0) -> list[Metric]:
    """Predicting the majority class (transductive folds, like `probe_metrics`): balanced accuracy 1/classes."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = []
    for train, test in splitter.split(np.zeros(len(labels)), labels):
        majority = Counter(labels[train]).most_common(1)[0][0]
        scores.append(balanced_accuracy_score(labels[test], np.full(len(test), majority)))
    mean, se = float(np.mean(scores)), float(np.std(scores, ddof=1) / np.sqrt(len(scores)))
    return [Metric("majority", f"cv_{name}_balanced_accuracy", label_name, mean, len(labels), se, seed)
            for name in PROBES]  # fmt: skip


def held_out_majority_metrics(
    train_labels: np.ndarray, test_labels: np.ndarray, label_name: str, seed: int = 0
) -> list[Metric]:
    """The training split's majority class predicted for every test document."""
    majority = Counter(train_labels).most_common(1)[0][0]
    predicted = np.full(len(test_labels), majority, dtype=object)
    value = float(balanced_accuracy_score(test_labels, predicted))
    se = bootstrap_se(np.asarray(test_labels, dtype=object), predicted, seed=seed)
    return [Metric("majority", f"{name}_balanced_accuracy", label_name, value, len(test_labels), se, seed)
            for name in PROBES]  # fmt: skip


# --- ALFWorld: nearest training state's action --------------------------------------------------------------------


def next_action_metrics(
    method: str, train_x, train_actions: Sequence[str], eval_x, eval_actions: Sequence[str], split: str
) -> Metric:
    """Accuracy of copying the nearest training state's action, digits ignored."""
    nearest = cosine_neighbours(eval_x, train_x, 1)[:, 0]
    predicted = [normalise_action(train_actions[i]) for i in nearest]
    correct = np.array([p == normalise_action(a) for p, a in zip(predicted, eval_actions, strict=True)])
    accuracy = float(correct.mean())
    return Metric(method, "accuracy", split, accuracy, len(correct), binomial_se(accuracy, len(correct)))


def majority_action_metric(train_actions: Sequence[str], eval_actions: Sequence[str], split: str) -> Metric:
    majority = Counter(normalise_action(a) for a in train_actions).most_common(1)[0][0]
    correct = np.array([normalise_action(a) == majority for a in eval_actions])
    accuracy = float(correct.mean())
    return Metric("majority", "accuracy", split, accuracy, len(correct), binomial_se(accuracy, len(correct)))
