"""Stable factor ids across refits: matching by shared properties, fresh ids never reused, drift reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.artifacts import FactorModel
from instructlf_assets.core.factor_identity import (
    KEEP_THRESHOLD,
    MATCH_THRESHOLD,
    stabilize_ids,
    weight_rows,
)
from instructlf_assets.core.factors import FactorOptions, fit_factors


def model_of(factors: dict[str, list[str]], n_properties: int | None = None) -> FactorModel:
    """A hand-made model: each factor's properties with equal information; weights row i = marker value i."""
    rows = [(text, factor_id) for factor_id, texts in factors.items() for text in texts]
    assignments = pd.DataFrame(
        {
            "property_id": [f"p{i:05d}" for i in range(len(rows))],
            "text": [text for text, _ in rows],
            "factor_id": [factor_id for _, factor_id in rows],
            "mutual_information": 1.0,
            "weight": 0.5,
        }
    )
    table = pd.DataFrame({"factor_id": list(factors), "top_properties": [texts[:8] for texts in factors.values()]})
    n_factors, n_columns = len(factors), n_properties or len(rows)
    ids_in_row_order = sorted(factors, key=lambda i: int(i[1:]))
    weights = np.repeat(np.array([float(i[1:]) for i in ids_in_row_order])[:, None], n_columns, axis=1)
    scores = pd.DataFrame({"doc_id": ["d0", "d1"], **{i: [float(i[1:])] * 2 for i in factors}})
    return FactorModel(weights, np.zeros(n_columns), np.ones(n_columns), assignments, table, scores,
                       {"n_factors": n_factors})  # fmt: skip


def texts(topic: str, n: int = 5) -> list[str]:
    return [f"{topic} {k}" for k in range(n)]


def status_of(drift: pd.DataFrame) -> dict[str, str]:
    return dict(zip(drift["factor_id"], drift["status"], strict=True))


# ---- pure matching -------------------------------------------------------------------------------------------


def test_first_fit_keeps_the_fitted_ids_and_calls_every_factor_new() -> None:
    fitted = model_of({"f00": texts("plot"), "f01": texts("music")})
    stable, drift = stabilize_ids(None, fitted)
    assert drift.first_fit and status_of(drift.table) == {"f00": "new", "f01": "new"}
    assert list(stable.factors["factor_id"]) == ["f00", "f01"] and stable.summary["max_factor_id"] == 1


def test_permuted_factors_are_matched_back_to_their_ids_with_every_table_and_weight_row_renamed() -> None:
    previous = model_of({"f00": texts("plot"), "f01": texts("music"), "f02": texts("acting")})
    # The same factors, numbered otherwise by the refit: fitted f00 is the previous f02 (acting), and so on.
    fitted = model_of({"f00": texts("acting"), "f01": texts("plot"), "f02": texts("music")})
    stable, drift = stabilize_ids(previous, fitted)
    assert status_of(drift.table) == {"f02": "kept", "f00": "kept", "f01": "kept"}
    assert drift.table["overlap"].tolist() == pytest.approx([1.0, 1.0, 1.0])
    assert drift.counts() == {"n_kept": 3, "n_changed": 0, "n_new": 0, "n_gone": 0}
    topic = stable.assignments.groupby("factor_id")["text"].first().str.split().str[0].to_dict()
    assert topic == {"f00": "plot", "f01": "music", "f02": "acting"}
    assert list(stable.document_scores.columns) == ["doc_id", "f00", "f01", "f02"]  # in weight row order
    # Row i of the weights belongs to the i-th smallest id: f00 (plot) was the fitted f01, whose row held 1.0.
    rows = weight_rows(stable)
    assert stable.weights[rows["f00"], 0] == 1.0 and stable.weights[rows["f02"], 0] == 0.0
    assert stable.weights[rows["f01"], 0] == 2.0
    # The document scores moved with their factors: column f00 holds what fitted f01 scored.
    assert stable.document_scores["f00"].tolist() == [1.0, 1.0]


def test_per_factor_vectors_are_reordered_with_the_weights_but_per_property_ones_are_not() -> None:
    previous = model_of({"f00": texts("plot"), "f01": texts("music")})
    fitted = model_of({"f00": texts("music"), "f01": texts("plot")}, n_properties=2)  # as many properties as factors
    fitted.factor_std = np.array([10.0, 11.0])  # as another per-factor array would be
    fitted.mean = np.array([5.0, 6.0])
    stable, _ = stabilize_ids(previous, fitted)
    assert stable.factor_std.tolist() == [11.0, 10.0] and stable.weights[:, 0].tolist() == [1.0, 0.0]
    assert stable.mean.tolist() == [5.0, 6.0]


def test_a_partly_changed_factor_is_changed_with_its_overlap() -> None:
    previous = model_of({"f00": texts("plot", 10), "f01": texts("music")})
    fitted = model_of({"f00": texts("music"), "f01": texts("plot", 10)[:6] + texts("pacing", 4)})
    stable, drift = stabilize_ids(previous, fitted)
    row = drift.table.set_index("factor_id").loc["f00"]
    assert MATCH_THRESHOLD <= 0.6 < KEEP_THRESHOLD
    assert row["status"] == "changed" and row["overlap"] == pytest.approx(0.6)
    assert row["previous_top_properties"] == texts("plot", 3) and "pacing 0" in stable.factors.iloc[1]["top_properties"]
    assert status_of(drift.table)["f01"] == "kept"


def test_a_new_cluster_gets_a_fresh_id_never_used_before_and_a_vanished_one_is_gone() -> None:
    previous = model_of({"f00": texts("plot"), "f01": texts("music"), "f03": texts("acting")})
    previous.summary["max_factor_id"] = 5  # f04 and f05 existed once and went away
    fitted = model_of({"f00": texts("music"), "f01": texts("humour"), "f02": texts("plot")})
    stable, drift = stabilize_ids(previous, fitted)
    assert status_of(drift.table) == {"f01": "kept", "f06": "new", "f00": "kept", "f03": "gone"}
    gone = drift.table.set_index("factor_id").loc["f03"]
    assert gone["previous_top_properties"] == texts("acting", 3) and gone["top_properties"] == []
    assert drift.counts() == {"n_kept": 2, "n_changed": 0, "n_new": 1, "n_gone": 1}
    assert stable.summary["max_factor_id"] == 6
    # Weights rows in ascending id order: f00 (plot, fitted row 2), f01 (music, row 0), f06 (humour, row 1).
    assert stable.weights[:, 0].tolist() == [2.0, 0.0, 1.0]


def test_a_factor_sharing_too_little_is_new_not_a_renamed_old_one() -> None:
    previous = model_of({"f00": texts("plot", 10), "f01": texts("music")})
    fitted = model_of({"f00": texts("music"), "f01": texts("plot", 10)[:2] + texts("pacing", 8)})
    _, drift = stabilize_ids(previous, fitted)
    table = drift.table.set_index("factor_id")
    assert table.loc["f02", "status"] == "new" and table.loc["f02", "compared_with"] == "f00"
    assert table.loc["f02", "overlap"] == pytest.approx(0.2) and table.loc["f00", "status"] == "gone"


def test_properties_are_matched_by_text_whatever_their_ids() -> None:
    previous = model_of({"f00": texts("plot"), "f01": texts("music")})
    fitted = model_of({"f00": texts("music"), "f01": texts("plot")})
    fitted.assignments["property_id"] = fitted.assignments["property_id"][::-1].to_numpy()  # renumbered vocabulary
    stable, drift = stabilize_ids(previous, fitted)
    assert drift.counts()["n_kept"] == 2 and list(stable.factors["factor_id"]) == ["f01", "f00"]


# ---- real fits on planted score matrices ---------------------------------------------------------------------

ASPECTS = ["acting", "plot", "visuals", "soundtrack", "pacing", "humour"]


def planted_scores(aspects: list[str], n_documents: int = 600, per_aspect: int = 6, seed: int = 0):
    """Documents x properties where each aspect's properties rise and fall together (as the demo's reviews do)."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(n_documents, len(aspects)))
    columns = [
        hidden[:, j] * 0.8 + rng.normal(0, 0.5, n_documents) for j in range(len(aspects)) for _ in range(per_aspect)
    ]
    names = [f"{aspect} property {k}" for aspect in aspects for k in range(per_aspect)]
    properties = pd.DataFrame({"property_id": [f"p{i:05d}" for i in range(len(names))], "text": names})
    return np.stack(columns, axis=1).astype(np.float32), properties


def write_planted_upstream(storage, aspects: list[str], data_seed: int = 0, text=lambda doc_id: "t") -> None:
    """`tiny`'s raw_documents, property_vocabulary and property_scores written straight into storage: the inputs
    of latent_factors from planted scores, without proposing or training anything (first 400 documents train)."""
    from instructlf_assets.core.artifacts import ScoreMatrix
    from resources.storage import write_artifact

    scores, properties = planted_scores(aspects, seed=data_seed)
    doc_ids = np.array([f"d{i:04d}" for i in range(len(scores))])
    split = np.where(np.arange(len(scores)) < 400, "train", "test")
    texts = [text(doc_id) for doc_id in doc_ids]
    write_artifact(storage / "raw_documents" / "tiny", pd.DataFrame({"doc_id": doc_ids, "text": texts, "split": split}))
    write_artifact(storage / "property_vocabulary" / "tiny", properties)
    write_artifact(
        storage / "property_scores" / "tiny", ScoreMatrix(scores, doc_ids, properties["property_id"].to_numpy())
    )


def fit(scores: np.ndarray, properties: pd.DataFrame, n_factors: int, seed: int) -> FactorModel:
    doc_ids = np.arange(len(scores)).astype(str)
    return fit_factors(scores[:400], scores, doc_ids, properties, FactorOptions(n_factors=n_factors, seed=seed))


def aspect_of(model: FactorModel) -> dict[str, str]:
    """factor id -> the planted aspect of its properties (each planted factor is one aspect)."""
    members = model.assignments.assign(aspect=model.assignments["text"].str.split().str[0])
    return members.groupby("factor_id")["aspect"].agg(lambda a: a.mode()[0]).to_dict()


def test_refitting_the_same_data_with_another_seed_keeps_every_id() -> None:
    scores, properties = planted_scores(ASPECTS[:5])
    first, _ = stabilize_ids(None, fit(scores, properties, 5, seed=0))
    refit = fit(scores, properties, 5, seed=1)
    assert aspect_of(refit) != aspect_of(first)  # the seed numbers the components otherwise
    stable, drift = stabilize_ids(first, refit)
    assert drift.counts() == {"n_kept": 5, "n_changed": 0, "n_new": 0, "n_gone": 0}
    assert aspect_of(stable) == aspect_of(first)
    # Document scores of a kept factor correlate with the previous fit's, column by column.
    for factor_id in aspect_of(first):
        r = np.corrcoef(first.document_scores[factor_id], stable.document_scores[factor_id])[0, 1]
        assert abs(r) > 0.95


def test_a_corpus_that_gains_a_planted_aspect_keeps_the_old_ids_and_adds_one() -> None:
    scores, properties = planted_scores(ASPECTS[:5])
    first, _ = stabilize_ids(None, fit(scores, properties, 5, seed=0))
    grown_scores, grown_properties = planted_scores(ASPECTS, seed=3)
    grown_properties = grown_properties.sample(frac=1.0, random_state=0)  # a vocabulary numbered otherwise
    grown_scores = grown_scores[:, grown_properties.index.to_numpy()]
    grown_properties = grown_properties.assign(property_id=[f"p{i:05d}" for i in range(len(grown_properties))])
    stable, drift = stabilize_ids(first, fit(grown_scores, grown_properties.reset_index(drop=True), 6, seed=0))
    assert drift.counts() == {"n_kept": 5, "n_changed": 0, "n_new": 1, "n_gone": 0}
    new = drift.table.loc[drift.table["status"] == "new", "factor_id"].tolist()
    assert new == ["f05"] and aspect_of(stable)["f05"] == "humour"
    assert {i: a for i, a in aspect_of(stable).items() if i != "f05"} == aspect_of(first)
    # The heat map's rule holds for the renamed model: each id's weight row loads on its own aspect's columns.
    rows = weight_rows(stable)
    for factor_id, aspect in aspect_of(stable).items():
        own = stable.assignments["text"].str.startswith(aspect).to_numpy()
        row = np.abs(stable.weights[rows[factor_id]])
        assert row[own].mean() > 3 * row[~own].mean()


def test_renamed_weights_still_score_each_document_as_its_stored_factor_column() -> None:
    scores, properties = planted_scores(ASPECTS[:5])
    first, _ = stabilize_ids(None, fit(scores, properties, 5, seed=0))
    stable, _ = stabilize_ids(first, fit(scores, properties, 5, seed=1))
    standardized = (scores.astype(np.float64) - stable.mean) / stable.scale
    recomputed = standardized @ stable.weights.T.astype(np.float64) / stable.factor_std
    stored = stable.document_scores.drop(columns="doc_id")
    assert list(stored.columns) == sorted(stored.columns)  # columns in weight row order
    np.testing.assert_allclose(recomputed, stored.to_numpy(), atol=1e-3)
