"""Scoring new documents with a dataset's stored model: no refit, no LLM, the same numbers as the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from instructlf_assets.api import load_model
from instructlf_assets.core.artifacts import FactorModel
from instructlf_assets.core.catalogue import get_dataset
from instructlf_assets.core.transform import FittedModel, ModelNotReadyError, read_documents, write_table
from resources.storage import read_artifact


@pytest.fixture(scope="module")
def tiny(tiny_in_process):
    assert tiny_in_process.result.success
    return tiny_in_process


@pytest.fixture(scope="module")
def model(tiny) -> FittedModel:
    return load_model("tiny", storage=tiny.storage)


@pytest.fixture(scope="module")
def documents(tiny) -> pd.DataFrame:
    return read_artifact(tiny.storage / "raw_documents" / "tiny")


def test_scoring_the_training_documents_reproduces_the_stored_document_scores(model, documents, tiny):
    scored = model.transform(documents["text"].tolist(), doc_ids=documents["doc_id"].tolist())
    stored = tiny.factors.document_scores
    assert list(scored["doc_id"]) == list(stored["doc_id"])
    factor_ids = [c for c in stored.columns if c != "doc_id"]
    assert [c for c in scored.columns if c not in ("doc_id", "top_properties")] == factor_ids
    np.testing.assert_allclose(scored[factor_ids].to_numpy(), stored[factor_ids].to_numpy(), atol=1e-4)


def test_property_scores_of_the_training_documents_match_the_stored_matrix(model, documents, tiny):
    np.testing.assert_allclose(model.property_scores(documents["text"].tolist()), tiny.scores, atol=1e-5)


def test_document_scores_columns_are_labelled_by_the_factor_row_they_come_from(tiny):
    """Column fNN is factor NN's transform, whatever order the factor table is sorted in."""
    stored = tiny.factors
    assert [c for c in stored.document_scores.columns if c != "doc_id"] == [
        f"f{j:02d}" for j in range(stored.weights.shape[0])
    ]


def test_top_properties_are_the_highest_scoring_properties_best_first(model):
    [row] = model.transform(["The soundtrack was gorgeous and the ending made me cry."], top_k=3)[
        "top_properties"
    ].tolist()
    scores = model.property_scores(["The soundtrack was gorgeous and the ending made me cry."])[0]
    best = np.argsort(-scores)[:3]
    assert [text for text, _ in row] == [model.properties[j] for j in best]
    assert [s for _, s in row] == sorted((s for _, s in row), reverse=True)


def test_a_series_keeps_its_index_as_doc_id(model):
    texts = pd.Series(["Great cast.", "Slow plot."], index=["a", "b"])
    scored = model.transform(texts)
    assert list(scored["doc_id"]) == ["a", "b"]
    assert len(scored) == 2 and scored[model.factor_ids].notna().all().all()


def test_a_factor_model_saved_without_factor_std_loads_but_refuses_to_score(tiny, tmp_path):
    old = FactorModel(**{**tiny.factors.__dict__, "factor_std": None})
    old.save(tmp_path)
    loaded = FactorModel.load(tmp_path)
    assert loaded.factor_std is None
    with pytest.raises(ModelNotReadyError, match="re-materialize latent_factors"):
        FittedModel(tmp_path, tiny.vocabulary, loaded, dataset="tiny")


def test_a_model_with_a_different_vocabulary_is_refused(tiny):
    with pytest.raises(ModelNotReadyError, match="not the one latent_factors was fitted on"):
        FittedModel(tiny.storage, tiny.vocabulary.iloc[1:], tiny.factors, dataset="tiny")


def test_a_dataset_never_materialized_says_to_run_it(tmp_path):
    with pytest.raises(ModelNotReadyError, match="instructlf run nothing_here"):
        load_model("nothing_here", storage=tmp_path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_new_documents_are_read_from_each_format_with_the_datasets_field_names(tmp_path, suffix):
    table = pd.DataFrame({"doc_id": ["x1", "x2"], "text": ["Loved it.", "Hated it."]})
    path = tmp_path / f"new{suffix}"
    write_table(table, path)
    read, _ = read_documents(path, get_dataset("tiny"))
    pd.testing.assert_frame_equal(read, table)


def test_written_top_properties_are_json_in_csv_and_lists_in_jsonl(model, tmp_path):
    scored = model.transform(["Loved it."])
    write_table(scored, tmp_path / "out.csv")
    write_table(scored, tmp_path / "out.jsonl")
    from_csv = json.loads(pd.read_csv(tmp_path / "out.csv")["top_properties"][0])
    from_jsonl = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["top_properties"]
    assert from_csv == from_jsonl == scored["top_properties"][0]
