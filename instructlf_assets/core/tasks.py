"""Downstream tasks: each turns factor scores and baselines into rows of the same metrics table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .artifacts import FactorModel
from .catalogue import TaskSpec
from .demo_corpus import planted_aspect
from .evaluation import Metric, binary_probe, majority_baseline, planted_ami
from .protocols import (
    frequent_classes,
    held_out_majority_metrics,
    held_out_probe_metrics,
    majority_action_metric,
    majority_probe_metrics,
    next_action_metrics,
    popularity_metrics,
    probe_metrics,
    recommendation_metrics,
    recommendation_upper_bound,
)
from .representations import standardised, unit_rows


@dataclass(frozen=True)
class TaskInputs:
    documents: pd.DataFrame
    factors: FactorModel
    property_scores: np.ndarray
    baselines: Mapping[str, object]  # name -> features, fitted on the training rows (representations.fit_baselines)


def evaluate_planted_factors(inputs: TaskInputs, target: str, seed: int = 0) -> list[Metric]:
    """Demo task: are the planted aspects recovered, and do factor scores predict the planted target?"""
    assignments = inputs.factors.assignments
    ami, n_labelled = planted_ami(assignments["text"].tolist(), assignments["factor_id"].to_numpy(), planted_aspect)
    metrics = [
        Metric("factors", "ami_planted_aspects", None, ami, n_labelled),
        Metric(
            "factors",
            "off_goal_property_share",
            None,
            1 - n_labelled / max(len(assignments), 1),
            len(assignments),
        ),
    ]
    split = inputs.documents["split"].to_numpy()
    y = inputs.documents[target].to_numpy()
    train, test = split == "train", split == "test"
    features = {
        "factors": inputs.factors.document_scores.drop(columns="doc_id").to_numpy(),
        "property_scores": np.asarray(inputs.property_scores),
        "embeddings": inputs.baselines["embeddings"],
    }
    for method, x in features.items():
        metrics.extend(binary_probe(method, x[train], y[train], x[test], y[test], "test", seed))
    metrics.append(majority_baseline(y[train], y[test], "test"))
    return metrics


def similarity_spaces(inputs: TaskInputs, train: np.ndarray) -> Iterator[tuple[str, object]]:
    """`representations(..., for_similarity=True)` one method at a time: a kNN protocol holds one space, not all
    of them, which at 60k ALFWorld states is the difference of gigabytes."""
    factors = inputs.factors.document_scores.drop(columns="doc_id").to_numpy(dtype=np.float32)
    yield "factors", standardised(factors, train)
    yield "property_scores", standardised(inputs.property_scores, train)
    for name, x in inputs.baselines.items():
        yield name, x if name == "tfidf" else unit_rows(x)


def representations(inputs: TaskInputs, train: np.ndarray, for_similarity: bool) -> dict[str, object]:
    """Instruct-LF's factors and property scores beside the baselines, all fitted on the same training rows.

    For similarity search, dense spaces are standardised and row-normalised so cosine compares like with like
    (TF-IDF rows are L2-normalised already); probes get the raw features (trees do not care about scale, the
    logistic probe standardises itself). LDA, the interpretable peer, has as many topics as there are factors.
    """
    factors = inputs.factors.document_scores.drop(columns="doc_id").to_numpy(dtype=np.float32)
    scores = np.asarray(inputs.property_scores, dtype=np.float32)
    if not for_similarity:
        return {"factors": factors, "property_scores": scores, **inputs.baselines}
    return dict(similarity_spaces(inputs, train))


def evaluate_recommendation(inputs: TaskInputs, target: str, task: TaskSpec, seed: int = 0) -> list[Metric]:
    """Inspired: kNN over training posts votes for movies; N tuned for Hit@20 on valid; Hit@k on test."""
    split = inputs.documents["split"].to_numpy()
    movies = list(inputs.documents[target])
    rows = {name: np.flatnonzero(split == name) for name in ("train", "valid", "test")}
    pick = {name: [list(movies[i]) for i in index] for name, index in rows.items()}
    metrics = [recommendation_upper_bound(pick["train"], pick["test"])]
    metrics += popularity_metrics(pick["train"], pick["test"], task.ks)
    for method, x in similarity_spaces(inputs, split == "train"):
        metrics += recommendation_metrics(
            method,
            x[rows["train"]],
            pick["train"],
            x[rows["valid"]],
            pick["valid"],
            x[rows["test"]],
            pick["test"],
            task.ks,
            task.neighbours,
        )
    return metrics


def evaluate_classification(inputs: TaskInputs, task: TaskSpec, seed: int = 0) -> list[Metric]:
    """Bills: decision-tree and logistic probes per label, rare classes dropped.

    Headline (`METHOD/tree_balanced_accuracy/LABEL`): probes fitted on the train and valid documents, scored on
    the test documents, which no representation, vocabulary or probe has seen. With `task.cross_validate`, also
    the paper's transductive k-fold over every kept document (`METHOD/cv_tree_balanced_accuracy/LABEL`). Last,
    validation (`METHOD/valid_tree_balanced_accuracy/LABEL`): probes fitted on train, scored on valid, with rare
    classes counted without the test documents, so no test label has a say in it.
    """
    split = inputs.documents["split"].to_numpy()
    features = representations(inputs, split == "train", for_similarity=False)
    metrics, validation = [], []
    for label in task.targets or ((task.target,) if task.target else ()):
        labels = inputs.documents[label].astype(str).to_numpy()
        keep, dropped = frequent_classes(labels, task.min_class_size)
        metrics.append(Metric("data", "dropped_classes", label, float(dropped), int((~keep).sum())))
        metrics.append(Metric("data", "classes", label, float(len(np.unique(labels[keep]))), int(keep.sum())))
        fit_rows = np.flatnonzero(keep & (split != "test"))
        test_rows = np.flatnonzero(keep & (split == "test"))
        if len(test_rows):
            metrics += held_out_majority_metrics(labels[fit_rows], labels[test_rows], label, seed)
            for method, x in features.items():
                metrics += held_out_probe_metrics(
                    method, x[fit_rows], labels[fit_rows], x[test_rows], labels[test_rows], label, seed
                )
        if task.cross_validate:
            metrics += majority_probe_metrics(labels[keep], label, task.folds, seed)
            for method, x in features.items():
                metrics += probe_metrics(method, x[np.flatnonzero(keep)], labels[keep], label, task.folds, seed)
        validation += _validation_probes(features, labels, split, label, task.min_class_size, seed)
    return metrics + validation


def _validation_probes(
    features: dict[str, object], labels: np.ndarray, split: np.ndarray, label: str, min_class_size: int, seed: int
) -> list[Metric]:
    """Probes fitted on train, scored on valid: where configurations are chosen (`valid_*` metrics)."""
    seen = split != "test"
    keep = np.zeros(len(labels), dtype=bool)
    keep[seen] = frequent_classes(labels[seen], min_class_size)[0]
    train_rows, valid_rows = np.flatnonzero(keep & (split == "train")), np.flatnonzero(keep & (split == "valid"))
    if not len(train_rows) or not len(valid_rows):
        return []
    metrics = []
    for method, x in features.items():
        metrics += held_out_probe_metrics(
            method, x[train_rows], labels[train_rows], x[valid_rows], labels[valid_rows], label, seed,
            metric_prefix="valid_",
        )  # fmt: skip
    return metrics


def evaluate_next_action(inputs: TaskInputs, target: str, seed: int = 0) -> list[Metric]:
    """ALFWorld: copy the nearest training state's action; accuracy (digits ignored) per evaluation split."""
    documents = inputs.documents
    train = documents["split"].isin(["train", "valid"]).to_numpy()
    actions = documents[target].astype(str).to_numpy()
    eval_splits = sorted(set(documents.loc[~train, "eval_split"]) - {""})
    fit, valid = (documents["split"] == "train").to_numpy(), (documents["split"] == "valid").to_numpy()
    eval_rows = {split: (documents["eval_split"] == split).to_numpy() & ~train for split in eval_splits}
    validation: list[Metric] = []
    evaluation: dict[str, list[Metric]] = {
        split: [majority_action_metric(actions[train], actions[rows], split)] for split, rows in eval_rows.items()
    }
    for method, x in similarity_spaces(inputs, train):
        if valid.any() and fit.any():
            # Validation: training states only, the valid ones scored against the rest; where configurations
            # are chosen.
            validation.append(next_action_metrics(method, x[fit], actions[fit], x[valid], actions[valid], "valid"))
        for split, rows in eval_rows.items():
            evaluation[split].append(
                next_action_metrics(method, x[train], actions[train], x[rows], actions[rows], split)
            )
    metrics = validation + [metric for split in eval_splits for metric in evaluation[split]]
    return metrics
