"""Honest protocols: every unsupervised fit sees training documents only; evaluation documents decide nothing."""

import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.representations import lda_features, tfidf_features


@pytest.fixture(scope="module")
def pipeline(tiny_in_process):
    assert tiny_in_process.result.success
    documents = pd.read_parquet(tiny_in_process.storage / "raw_documents" / "tiny" / "table.parquet")
    return tiny_in_process, documents


def ids_of(documents: pd.DataFrame, split: str) -> set[str]:
    return set(documents.loc[documents["split"] == split, "doc_id"])


def test_the_vocabulary_is_built_from_training_documents_only(pipeline):
    run, documents = pipeline
    seen = run.fitted_on["vocabulary"]
    assert seen and seen <= ids_of(documents, "train")
    assert not seen & (ids_of(documents, "test") | ids_of(documents, "valid"))


def test_the_encoder_is_tuned_on_training_documents_only(pipeline):
    run, documents = pipeline
    anchors = run.fitted_on["encoder"]
    texts = documents.set_index("doc_id")["text"]
    assert anchors and anchors <= set(texts[list(ids_of(documents, "train"))])
    assert not anchors & set(texts[list(ids_of(documents, "test"))])


def test_corex_is_fitted_on_the_training_rows_of_the_score_matrix_only(pipeline):
    run, documents = pipeline
    train_rows = (documents["split"] == "train").to_numpy()
    np.testing.assert_array_equal(run.fitted_on["corex"], run.scores[train_rows])


def test_tfidf_and_lda_never_learn_a_word_only_test_documents_use():
    texts = ["apples and pears", "pears and plums", "apples and plums", "plums and apples", "zebra quagga okapi"]
    train = np.array([True, True, True, True, False])
    tfidf = tfidf_features(texts * 2, np.concatenate([train, train]))
    assert tfidf[4].nnz == 0, "a test-only word became a TF-IDF feature"
    counts_seen = lda_features(texts * 2, np.concatenate([train, train]), n_topics=2)
    assert np.allclose(counts_seen[4], counts_seen[4].mean()), "LDA gave a test-only document a topic from its words"
