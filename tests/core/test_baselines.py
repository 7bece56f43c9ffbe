"""The baselines' representations: fitted once on the training rows, stored without pickling, BERTopic when present."""

import json

import numpy as np
import pytest
from scipy import sparse

from instructlf_assets.core.artifacts import BaselineFeatures
from instructlf_assets.core.demo_corpus import generate_demo_corpus
from instructlf_assets.core.representations import MIN_BERTOPIC_DOCUMENTS, fit_baselines


def demo(n: int = 300):
    documents = generate_demo_corpus(n, seed=5)
    return documents["text"].tolist(), np.arange(n) % 5 != 0


def test_every_baseline_has_a_row_per_document_and_lda_the_requested_topics(fake_embed):
    texts, train = demo()
    features = fit_baselines(texts, train, fake_embed(texts), n_topics=7)
    assert set(features) == {"embeddings", "tfidf", "lda"}
    assert sparse.issparse(features["tfidf"]) and features["tfidf"].shape[0] == len(texts)
    assert features["lda"].shape == (len(texts), 7)
    assert features["embeddings"].dtype == np.float32


def test_stored_baselines_load_back_identical_dense_and_sparse(tmp_path, fake_embed):
    texts, train = demo(120)
    features = fit_baselines(texts, train, fake_embed(texts), n_topics=3)
    BaselineFeatures(features, np.array([f"d{i}" for i in range(120)]), {"lda_topics": 3}).save(tmp_path)
    loaded = BaselineFeatures.load(tmp_path)
    assert (loaded.features["tfidf"] != features["tfidf"]).nnz == 0
    np.testing.assert_array_equal(loaded.features["lda"], features["lda"])
    assert loaded.info == {"lda_topics": 3} and loaded.doc_ids[5] == "d5"
    assert not list(tmp_path.glob("*.pkl"))


@pytest.mark.parametrize("entry", [{"../x": "dense"}, {"tfidf": "pickle"}])
def test_a_tampered_manifest_naming_a_path_or_another_file_kind_is_refused(tmp_path, fake_embed, entry):
    texts, train = demo(60)
    BaselineFeatures(fit_baselines(texts, train, fake_embed(texts), 2), np.arange(60).astype(str)).save(tmp_path)
    (tmp_path / "baselines.json").write_text(json.dumps({"kinds": entry, "info": {}}))
    with pytest.raises(ValueError, match="unexpected baseline entry"):
        BaselineFeatures.load(tmp_path)


def test_baselines_learn_no_word_that_only_non_training_documents_use(fake_embed):
    texts, train = demo(100)
    texts = [t + (" zanzibar" if not keep else "") for t, keep in zip(texts, train, strict=True)]
    features = fit_baselines(texts, train, fake_embed(texts), n_topics=2)
    assert features["tfidf"][~train].sum() > 0
    from instructlf_assets.core.representations import tfidf_features

    with_word = tfidf_features(texts, np.ones(len(texts), dtype=bool))
    assert with_word.shape[1] > features["tfidf"].shape[1], "the test word would be a column if test rows were fitted"


@pytest.mark.slow
def test_bertopic_adds_its_topic_distribution_fitted_on_the_training_rows(fake_embed):
    pytest.importorskip("bertopic")
    texts, train = demo(400)
    features = fit_baselines(texts, train, fake_embed(texts), n_topics=4, bertopic=True)
    topics = features["bertopic"]
    assert topics.shape[0] == len(texts) and topics.shape[1] >= 1
    assert np.isfinite(topics).all() and (topics >= 0).all()


@pytest.mark.slow
def test_too_few_training_documents_for_bertopic_give_no_row_rather_than_a_fake_one(fake_embed):
    pytest.importorskip("bertopic")
    texts, _ = demo(MIN_BERTOPIC_DOCUMENTS)
    train = np.arange(len(texts)) < MIN_BERTOPIC_DOCUMENTS - 1
    assert "bertopic" not in fit_baselines(texts, train, fake_embed(texts), n_topics=2, bertopic=True)
