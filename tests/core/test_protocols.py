"""The downstream protocols on synthetic data where the right answer is known."""

import numpy as np
import pytest

from instructlf_assets.core.protocols import (
    cosine_neighbours,
    frequent_classes,
    held_out_majority_metrics,
    held_out_probe_metrics,
    knn_rankings,
    majority_action_metric,
    majority_probe_metrics,
    next_action_metrics,
    popularity_metrics,
    probe_metrics,
    recommendation_metrics,
    recommendation_upper_bound,
)
from instructlf_assets.core.representations import unit_rows


def clustered(n_per: int, n_clusters: int, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)) * 4
    labels = np.repeat(np.arange(n_clusters), n_per)
    return unit_rows(centres[labels] + rng.normal(size=(len(labels), dim))), labels


def test_cosine_neighbours_are_sorted_and_chunk_independent():
    x, _ = clustered(30, 3)
    neighbours = cosine_neighbours(x, x, 5)
    assert (neighbours[:, 0] == np.arange(len(x))).all(), "a row is its own nearest neighbour"
    sims = np.take_along_axis(x @ x.T, neighbours, axis=1)
    assert (np.diff(sims, axis=1) <= 1e-6).all()


def test_knn_votes_count_then_nearest_breaks_ties():
    neighbours = np.array([[0, 1, 2]])
    rankings = knn_rankings(neighbours, [["b"], ["a"], ["a"]], n=3, depth=2)
    assert rankings == [["a", "b"]]
    assert knn_rankings(neighbours, [["b"], ["a"], ["c"]], n=3, depth=3) == [["b", "a", "c"]]


def test_recommendation_finds_the_cluster_movie_and_beats_popularity():
    x, labels = clustered(40, 5)
    movies = [[f"Movie {label} (2001)"] for label in labels]
    rows = np.arange(len(x))
    train, valid, test = rows % 5 < 3, rows % 5 == 3, rows % 5 == 4
    pick = lambda mask: [movies[i] for i in np.flatnonzero(mask)]  # noqa: E731
    metrics = recommendation_metrics(
        "factors", x[train], pick(train), x[valid], pick(valid), x[test], pick(test), ks=(1, 20), candidates=(5, 20)
    )
    by_key = {m.key: m for m in metrics}
    assert by_key["factors/hit@1/test"].value > 0.9 and by_key["factors/hit@1/test"].stderr < 0.1
    popularity = {m.key: m.value for m in popularity_metrics(pick(train), pick(test), ks=(1, 20))}
    assert popularity["popularity/hit@1/test"] < 0.4 and popularity["popularity/hit@20/test"] == 1.0
    assert recommendation_upper_bound([["A (1999)"]], [["a"], ["b"]]).value == 0.5


def test_probes_separate_informative_from_random_features_and_drop_rare_classes():
    x, labels = clustered(30, 4)
    labels = labels.astype(str)
    labels[:3] = "rare"
    keep, dropped = frequent_classes(labels, 5)
    assert dropped == 1 and keep.sum() == len(labels) - 3
    good = {m.metric: m.value for m in probe_metrics("factors", x[keep], labels[keep], "topic", folds=5)}
    noise = np.random.default_rng(1).normal(size=x.shape)
    bad = {m.metric: m.value for m in probe_metrics("noise", noise[keep], labels[keep], "topic", folds=5)}
    assert good["cv_tree_balanced_accuracy"] > 0.8 and good["cv_logreg_balanced_accuracy"] > 0.9
    assert bad["cv_logreg_balanced_accuracy"] < 0.5
    majority = majority_probe_metrics(labels[keep], "topic", folds=5)
    assert majority[0].value == pytest.approx(0.25) and majority[0].key == "majority/cv_tree_balanced_accuracy/topic"


def test_held_out_probes_score_only_the_test_rows_with_a_bootstrap_error():
    x, labels = clustered(40, 4)
    labels = labels.astype(str)
    test = np.arange(len(x)) % 4 == 0
    good = held_out_probe_metrics("factors", x[~test], labels[~test], x[test], labels[test], "topic")
    assert {m.key for m in good} == {"factors/tree_balanced_accuracy/topic", "factors/logreg_balanced_accuracy/topic"}
    assert all(m.n == test.sum() and m.value > 0.8 and 0 <= m.stderr < 0.1 for m in good)
    shuffled = np.random.default_rng(3).permutation(labels[~test])  # labels unrelated to the features
    bad = held_out_probe_metrics("noise", x[~test], shuffled, x[test], labels[test], "topic")
    assert max(m.value for m in bad) < 0.5
    majority = held_out_majority_metrics(labels[~test], labels[test], "topic")
    assert majority[0].value == pytest.approx(0.25)


def test_next_action_copies_the_nearest_state_with_digits_ignored():
    x, labels = clustered(20, 3)
    actions = np.array([f"go to drawer {label}{i % 4}" if label else f"open box {i}" for i, label in
                        enumerate(labels)])  # fmt: skip
    train = np.arange(len(x)) % 2 == 0
    metric = next_action_metrics("factors", x[train], actions[train], x[~train], actions[~train], "valid_seen")
    assert metric.key == "factors/accuracy/valid_seen" and metric.value == 1.0
    assert majority_action_metric(actions[train], actions[~train], "valid_seen").value == pytest.approx(2 / 3, 0.01)
