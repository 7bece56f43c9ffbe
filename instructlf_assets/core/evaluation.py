"""Downstream evaluation: metrics and probes shared by every task, as one long table of results.

Every metric row carries its method, split, n and standard error, so factors and baselines are always read side by
side on the same split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

METRIC_COLUMNS = ["method", "metric", "split", "value", "n", "stderr", "seed"]


@dataclass(frozen=True)
class Metric:
    method: str
    metric: str
    split: str | None
    value: float
    n: int
    stderr: float | None = None
    seed: int | None = None

    @property
    def key(self) -> str:
        return "/".join(p for p in (self.method, self.metric, self.split) if p)


def metrics_table(metrics: list[Metric]) -> pd.DataFrame:
    return pd.DataFrame([{c: getattr(m, c) for c in METRIC_COLUMNS} for m in metrics], columns=METRIC_COLUMNS)


def metric_key(row: pd.Series) -> str:
    parts = [row["method"], row["metric"], row["split"]]
    return "/".join(str(p) for p in parts if isinstance(p, str) and p)


def planted_ami(property_texts: list[str], assignments: np.ndarray, label_of) -> tuple[float, int]:
    """AMI between factor assignment and planted label, over the properties that carry a planted label."""
    from sklearn.metrics import adjusted_mutual_info_score  # scikit-learn costs seconds to import

    labels = [label_of(text) for text in property_texts]
    keep = [i for i, label in enumerate(labels) if label is not None]
    if len(keep) < 2:
        return float("nan"), len(keep)
    ami = adjusted_mutual_info_score([labels[i] for i in keep], np.asarray(assignments)[keep])
    return float(ami), len(keep)


def binary_probe(
    method: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    split: str,
    seed: int = 0,
) -> list[Metric]:
    """Logistic-regression probe: accuracy (with binomial standard error) and ROC AUC on the test rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
    probe.fit(train_x, train_y)
    predicted = probe.predict(test_x)
    n = len(test_y)
    accuracy = float(np.mean(predicted == test_y))
    metrics = [Metric(method, "accuracy", split, accuracy, n, binomial_se(accuracy, n), seed)]
    if len(np.unique(test_y)) == 2:
        auc = roc_auc_score(test_y, probe.predict_proba(test_x)[:, 1])
        metrics.append(Metric(method, "auc", split, float(auc), n, None, seed))
    return metrics


def majority_baseline(train_y: np.ndarray, test_y: np.ndarray, split: str) -> Metric:
    values, counts = np.unique(train_y, return_counts=True)
    accuracy = float(np.mean(test_y == values[np.argmax(counts)]))
    return Metric("majority", "accuracy", split, accuracy, len(test_y), binomial_se(accuracy, len(test_y)))


def binomial_se(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n)) if n else float("nan")
