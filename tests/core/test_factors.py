import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.errors import FactorModelError
from instructlf_assets.core.factors import FactorOptions, choose_n_factors, default_n_factors, fit_factors


def test_default_scales_with_vocabulary_within_bounds():
    assert default_n_factors(5) == 2 and default_n_factors(120) == 12 and default_n_factors(10_000) == 50


def test_requested_factors_are_reduced_for_small_corpora_with_a_note():
    n, note = choose_n_factors(10, n_properties=40, n_train_documents=6)
    assert n == 5 and "reduced n_factors from 10 to 5" in note


def test_too_few_properties_or_documents_is_a_clear_error():
    with pytest.raises(FactorModelError, match="at least 2 properties"):
        choose_n_factors(None, 1, 100)
    with pytest.raises(FactorModelError, match="at least 3 training documents"):
        choose_n_factors(None, 10, 2)


def test_factors_are_named_from_their_own_top_properties():
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(600, 2))
    columns, texts = [], []
    for j, topic in enumerate(["music", "plot"]):
        for k in range(4):
            columns.append(hidden[:, j] * 0.8 + rng.normal(0, 0.5, 600))
            texts.append(f"{topic} property {k}")
    scores = np.stack(columns, axis=1).astype(np.float32)
    properties = pd.DataFrame({"property_id": [f"p{i:05d}" for i in range(8)], "text": texts})
    model = fit_factors(scores[:400], scores, np.arange(600).astype(str), properties, FactorOptions(n_factors=2))
    for row in model.factors.itertuples():
        topics = {t.split()[0] for t in row.top_properties}
        assert len(topics) == 1 and row.name.split()[0] in topics and row.n_properties == 4
    assert model.document_scores.shape == (600, 3)
    assert model.assignments["factor_id"].nunique() == 2 and model.summary["tc"] > 0
    assert abs(model.factors["tc_share"].sum() - 1.0) < 1e-6


def test_a_constant_score_column_is_assigned_but_carries_no_information():
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(300, 1))
    scores = np.concatenate([hidden + rng.normal(0, 0.4, (300, 4)), np.full((300, 1), 0.25)], axis=1)
    properties = pd.DataFrame({"property_id": [f"p{i}" for i in range(5)], "text": [f"t{i}" for i in range(5)]})
    model = fit_factors(scores.astype(np.float32), scores.astype(np.float32), np.arange(300).astype(str), properties,
                        FactorOptions(n_factors=2))  # fmt: skip
    constant = model.assignments.set_index("property_id").loc["p4"]
    assert constant["mutual_information"] == pytest.approx(0.0, abs=1e-3)
    assert np.isfinite(model.weights).all() and np.isfinite(model.document_scores.drop(columns="doc_id")).all().all()
    assert len(model.assignments) == 5 and model.summary["tc"] > 0
