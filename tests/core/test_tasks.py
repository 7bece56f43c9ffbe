"""Each task's evaluation on synthetic inputs: every method is reported, on the right split, under its key."""

import numpy as np
import pandas as pd

from instructlf_assets.core.artifacts import FactorModel
from instructlf_assets.core.catalogue import TaskSpec
from instructlf_assets.core.representations import fit_baselines
from instructlf_assets.core.tasks import (
    TaskInputs,
    evaluate_classification,
    evaluate_next_action,
    evaluate_recommendation,
)

METHODS = {"factors", "property_scores", "embeddings", "tfidf", "lda"}
WORDS = ["alpha", "beta", "gamma", "delta"]


def inputs_for(documents: pd.DataFrame, cluster: np.ndarray, seed: int = 0) -> TaskInputs:
    """Factor scores that know the cluster; property scores and embeddings that are noise."""
    rng = np.random.default_rng(seed)
    n = len(documents)
    factors = np.eye(cluster.max() + 1)[cluster] + rng.normal(0, 0.1, (n, cluster.max() + 1))
    scores = pd.DataFrame(factors, columns=[f"f{j:02d}" for j in range(factors.shape[1])])
    scores.insert(0, "doc_id", documents["doc_id"].to_numpy())
    model = FactorModel(np.zeros((1, 1)), np.zeros(1), np.ones(1), pd.DataFrame(), pd.DataFrame(), scores)
    train = (documents["split"] == "train").to_numpy()
    baselines = fit_baselines(documents["text"].tolist(), train, rng.normal(size=(n, 16)), scores.shape[1] - 1)
    return TaskInputs(documents, model, rng.normal(size=(n, 12)), baselines)


def texts(cluster: np.ndarray, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, 6)) + f" filler{i % 3} text" for i, _ in enumerate(cluster)]


def test_recommendation_reports_hits_for_every_method_and_the_factor_signal_wins():
    cluster = np.arange(200) % 4
    split = np.where(np.arange(200) % 5 == 0, "test", np.where(np.arange(200) % 5 == 1, "valid", "train"))
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(200)], "text": texts(cluster), "split": split})
    documents["movies"] = [[f"Movie {c} (2010)"] for c in cluster]
    metrics = {m.key: m.value for m in evaluate_recommendation(inputs_for(documents, cluster), "movies", TaskSpec())}
    for method in METHODS:
        assert f"{method}/hit@20/test" in metrics and f"{method}/tuned_neighbours/valid" in metrics
    assert metrics["factors/hit@1/test"] > 0.9 > metrics["embeddings/hit@1/test"]
    assert metrics["upper_bound/hit@any/test"] == 1.0 and "popularity/hit@50/test" in metrics


def test_classification_probes_every_label_and_method_with_rare_classes_counted():
    cluster = np.arange(120) % 3
    split = np.where(np.arange(120) % 5 == 0, "test", "train")
    documents = pd.DataFrame({"doc_id": [f"b{i}" for i in range(120)], "text": texts(cluster), "split": split})
    documents["topic"] = [f"T{c}" for c in cluster]
    documents.loc[:2, "topic"] = "Rare"
    documents["topic::subtopic"] = documents["topic"] + "::x"
    task = TaskSpec(type="classification", targets=("topic", "topic::subtopic"), cross_validate=True)
    measured = evaluate_classification(inputs_for(documents, cluster), task)
    metrics = {m.key: m.value for m in measured}
    assert metrics["data/dropped_classes/topic"] == 1.0 and metrics["data/classes/topic::subtopic"] == 3.0
    for method in METHODS | {"majority"}:
        assert f"{method}/tree_balanced_accuracy/topic::subtopic" in metrics
        assert f"{method}/cv_tree_balanced_accuracy/topic::subtopic" in metrics
    logreg = "logreg_balanced_accuracy/topic"
    assert metrics[f"factors/{logreg}"] > 0.9 > metrics[f"embeddings/{logreg}"]
    n_test = int(((split == "test") & (documents["topic"] != "Rare").to_numpy()).sum())
    assert {m.n for m in measured if m.metric == "tree_balanced_accuracy"} == {n_test}, "headline: test rows only"


def test_classification_without_a_test_split_reports_only_what_it_can():
    cluster = np.arange(60) % 3
    documents = pd.DataFrame({"doc_id": [f"b{i}" for i in range(60)], "text": texts(cluster), "split": "train"})
    documents["topic"] = [f"T{c}" for c in cluster]
    task = TaskSpec(type="classification", targets=("topic",))
    keys = {m.key for m in evaluate_classification(inputs_for(documents, cluster), task)}
    assert not any("balanced_accuracy" in key for key in keys)


def test_next_action_is_reported_per_evaluation_split():
    cluster = np.arange(150) % 3
    eval_split = np.where(np.arange(150) < 100, "", np.where(np.arange(150) < 125, "valid_seen", "valid_unseen"))
    documents = pd.DataFrame(
        {
            "doc_id": [f"s{i}" for i in range(150)],
            "text": texts(cluster),
            "split": np.where(eval_split == "", "train", "test"),
            "eval_split": eval_split,
            "action": [f"do thing {c} {i}" for i, c in enumerate(cluster)],
        }
    )
    documents.loc[documents.index % 3 == 0, "action"] = "go to place 7"
    metrics = {m.key: m.value for m in evaluate_next_action(inputs_for(documents, cluster), "action")}
    for split in ("valid_seen", "valid_unseen"):
        assert {f"{m}/accuracy/{split}" for m in METHODS | {"majority"}} <= set(metrics)
    assert metrics["factors/accuracy/valid_seen"] == 1.0


def test_lda_compares_with_the_factors_at_their_dimensionality():
    from instructlf_assets.core.tasks import representations

    cluster = np.arange(120) % 5
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(120)], "text": texts(cluster), "split": "train"})
    inputs = inputs_for(documents, cluster)
    for for_similarity in (True, False):
        features = representations(inputs, np.ones(120, dtype=bool), for_similarity=for_similarity)
        assert features["lda"].shape == features["factors"].shape == (120, 5)


def test_every_task_reports_a_validation_score_that_never_reads_the_evaluation_rows():
    cluster = np.arange(200) % 4
    split = np.where(np.arange(200) % 5 == 0, "test", np.where(np.arange(200) % 5 == 1, "valid", "train"))
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(200)], "text": texts(cluster), "split": split})
    documents["movies"] = [[f"Movie {c}"] for c in cluster]
    documents["topic"] = [f"T{c}" for c in cluster]
    documents["eval_split"] = np.where(split == "test", "valid_seen", "")
    documents["action"] = [f"do thing {c}" for c in cluster]
    # Scrambling the evaluation rows' labels must leave every validation score as it is.
    scrambled = documents.copy()
    test = split == "test"
    scrambled.loc[test, "movies"] = pd.Series([["Nothing"]] * int(test.sum()), index=scrambled.index[test])
    scrambled.loc[test, "topic"] = "T0"
    scrambled.loc[test, "action"] = "do nothing"
    task = TaskSpec(type="classification", targets=("topic",))
    for evaluate in (
        lambda d: evaluate_recommendation(inputs_for(d, cluster), "movies", TaskSpec()),
        lambda d: evaluate_classification(inputs_for(d, cluster), task),
        lambda d: evaluate_next_action(inputs_for(d, cluster), "action"),
    ):
        valid = {m.key: m for m in evaluate(documents) if m.split == "valid" or m.metric.startswith("valid_")}
        again = {m.key: m for m in evaluate(scrambled) if m.split == "valid" or m.metric.startswith("valid_")}
        assert {f"{method}" for method in METHODS} <= {key.split("/")[0] for key in valid}
        assert {k: m.value for k, m in valid.items()} == {k: m.value for k, m in again.items()}
        assert all(m.n == int((split == "valid").sum()) for m in valid.values() if m.metric != "tuned_neighbours")


def test_validation_keeps_or_drops_a_class_without_counting_test_labels():
    cluster = np.arange(200) % 4
    split = np.where(np.arange(200) % 5 == 0, "test", np.where(np.arange(200) % 5 == 1, "valid", "train"))
    documents = pd.DataFrame({"doc_id": [f"d{i}" for i in range(200)], "text": texts(cluster), "split": split})
    documents["topic"] = [f"T{c}" for c in cluster]
    edge = np.flatnonzero(split != "test")[:4]  # four seen bills: below min_class_size 5 without the test one
    documents.loc[edge, "topic"] = "Edge"
    task = TaskSpec(type="classification", targets=("topic",))

    def validation(test_topic: str) -> dict[str, float]:
        variant = documents.copy()
        variant.loc[np.flatnonzero(split == "test")[0], "topic"] = test_topic
        measured = evaluate_classification(inputs_for(variant, cluster), task)
        return {m.key: (m.value, m.n) for m in measured if m.metric.startswith("valid_")}

    assert validation("Edge") == validation("T0")
