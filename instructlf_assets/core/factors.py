"""From a fitted Linear CorEx to named, interpretable factors.

A factor is named after the properties that carry most information about it; its `tc_share` is its part of the
total correlation it explains, so factors can be ranked by how much co-occurrence structure they capture.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .artifacts import FactorModel
from .corex import LinearCorex
from .errors import FactorModelError
from .factor_count import FactorCount, parallel_analysis


@dataclass(frozen=True)
class FactorOptions:
    n_factors: int | None = None
    max_iter: int = 1000
    seed: int = 0
    device: str = "auto"
    name_properties: int = 2
    top_properties: int = 8


def choose_n_factors(
    requested: int | None, train_scores: np.ndarray, seed: int = 0
) -> tuple[int, str | None, FactorCount | None]:
    """The number of factors to fit: `requested` when given, else what parallel analysis finds in the training
    scores; a note when it had to be reduced (documented automatic reduction) and the analysis, when one ran."""
    n_train_documents, n_properties = train_scores.shape
    if n_properties < 2:
        raise FactorModelError(f"need at least 2 properties to find factors, got {n_properties}")
    if n_train_documents < 3:
        raise FactorModelError(f"need at least 3 training documents to fit factors, got {n_train_documents}")
    count = None if requested else parallel_analysis(train_scores, seed=seed)
    wanted = requested or count.n_factors
    limit = min(n_properties, n_train_documents - 1)
    if wanted > limit:
        note = f"reduced n_factors from {wanted} to {limit} (properties={n_properties}, train docs={n_train_documents})"
        return limit, note, count
    return wanted, None, count


def fit_factors(
    train_scores: np.ndarray,
    all_scores: np.ndarray,
    doc_ids: np.ndarray,
    properties: pd.DataFrame,
    options: FactorOptions,
) -> FactorModel:
    """Fit CorEx on the training rows, assign each property to one factor, name factors, score all documents."""
    train = np.asarray(train_scores, dtype=np.float32)
    n_factors, note, count = choose_n_factors(options.n_factors, train, options.seed)
    model = LinearCorex(n_factors, max_iter=options.max_iter, random_state=options.seed, device=options.device)
    model.fit(train)
    doc_scores = model.transform(np.asarray(all_scores, dtype=np.float32))
    assignments = _assignments(model, properties)
    factors = _factors(model, assignments, options)
    # Column j of the transform is factor j; the factor table is sorted by total correlation, not by j.
    columns = [f"f{j:02d}" for j in range(doc_scores.shape[1])]
    document_scores = pd.DataFrame(doc_scores, columns=columns)
    document_scores.insert(0, "doc_id", doc_ids)
    summary = {
        "n_factors": n_factors,
        "tc": float(model.tc_),
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "note": note or "",
        "n_factors_rule": "requested" if count is None else "parallel_analysis",
        "oriented": True,  # LinearCorex.orientation: a higher score means more of the factor's own properties
    }
    if count is not None:
        summary["parallel_analysis_ceiling"] = count.ceiling
        summary["parallel_analysis_capped"] = count.capped
    return FactorModel(
        model.weights_,
        model.mean_,
        model.scale_,
        assignments,
        factors,
        document_scores,
        summary,
        factor_std=model.factor_std_,
    )


def _assignments(model: LinearCorex, properties: pd.DataFrame) -> pd.DataFrame:
    factor = model.assignments_
    columns = np.arange(len(factor))
    return pd.DataFrame(
        {
            "property_id": properties["property_id"].to_numpy(),
            "text": properties["text"].to_numpy(),
            "factor_id": [f"f{j:02d}" for j in factor],
            "mutual_information": model.mis_[factor, columns],
            "weight": model.weights_[factor, columns],
        }
    )


def _factors(model: LinearCorex, assignments: pd.DataFrame, options: FactorOptions) -> pd.DataFrame:
    total = float(np.sum(np.clip(model.tcs_, 0, None))) or 1.0
    rows = []
    for j in range(model.weights_.shape[0]):
        factor_id = f"f{j:02d}"
        members = assignments[assignments["factor_id"] == factor_id].sort_values("mutual_information", ascending=False)
        top = members.head(options.top_properties)
        # Named after what a high score means: its strongest properties that load positively (after orientation
        # that is most of them; a bipolar factor's opposite pole stays in the list with its negative weight).
        positive = top[top["weight"] > 0]
        name = " / ".join((positive if len(positive) else top)["text"].head(options.name_properties))
        name = name or "(no properties)"
        rows.append(
            {
                "factor_id": factor_id,
                "name": name,
                "n_properties": len(members),
                "top_properties": top["text"].tolist(),
                "top_weights": [float(w) for w in top["weight"]],
                "tc": float(model.tcs_[j]),
                "tc_share": max(float(model.tcs_[j]), 0.0) / total,
            }
        )
    return pd.DataFrame(rows).sort_values("tc", ascending=False, kind="stable").reset_index(drop=True)
