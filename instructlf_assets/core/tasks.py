"""Downstream tasks: each turns factor scores and baselines into rows of the same metrics table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .artifacts import FactorModel
from .demo_corpus import planted_aspect
from .evaluation import Metric, binary_probe, majority_baseline, planted_ami


@dataclass(frozen=True)
class TaskInputs:
    documents: pd.DataFrame
    factors: FactorModel
    property_scores: np.ndarray
    base_embeddings: np.ndarray


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
        "embeddings": inputs.base_embeddings,
    }
    for method, x in features.items():
        metrics.extend(binary_probe(method, x[train], y[train], x[test], y[test], "test", seed))
    metrics.append(majority_baseline(y[train], y[test], "test"))
    return metrics
