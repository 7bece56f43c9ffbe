import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.errors import FactorModelError
from instructlf_assets.core.factor_count import parallel_analysis
from instructlf_assets.core.factors import FactorOptions, choose_n_factors, fit_factors


def planted_scores(n_factors: int, per_factor: int = 8, rows: int = 800, noise: float = 0.8, seed: int = 0):
    """Each factor drives `per_factor` properties of its own; the rest of their variance is independent noise."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(rows, n_factors))
    loadings = np.repeat(np.eye(n_factors), per_factor, axis=1)
    return (hidden @ loadings + rng.normal(0, noise, size=(rows, n_factors * per_factor))).astype(np.float32)


@pytest.mark.parametrize("n_factors", [3, 7, 12])
def test_parallel_analysis_recovers_the_planted_number_of_factors(n_factors):
    assert parallel_analysis(planted_scores(n_factors)).n_factors == n_factors


def test_parallel_analysis_finds_no_structure_in_independent_scores():
    rng = np.random.default_rng(1)
    count = parallel_analysis(rng.normal(size=(500, 40)))
    assert count.n_factors == 2  # the floor: independent columns beat their own shuffles by chance only
    assert count.eigenvalues[0] < 1.5 * count.null_eigenvalues[0]


def test_parallel_analysis_is_capped_and_uses_top_eigenvalues_for_wide_data():
    count = parallel_analysis(planted_scores(12, per_factor=200, rows=300), ceiling=5)
    assert count.n_factors == 5 and count.ceiling == 5 and len(count.eigenvalues) == 6 and count.capped
    assert not parallel_analysis(planted_scores(3)).capped


def test_scores_with_nan_are_refused_by_name():
    scores = planted_scores(3)
    scores[5, 2] = np.nan
    with pytest.raises(FactorModelError, match="NaN"):
        parallel_analysis(scores)


def test_unset_n_factors_follows_the_data_and_the_model_says_so():
    scores = planted_scores(4, per_factor=5, rows=600)
    properties = pd.DataFrame({"property_id": [f"p{i:05d}" for i in range(20)], "text": [f"p {i}" for i in range(20)]})
    model = fit_factors(scores[:400], scores, np.arange(600).astype(str), properties, FactorOptions())
    assert model.summary["n_factors"] == 4 and model.summary["n_factors_rule"] == "parallel_analysis"
    assert model.assignments.groupby("factor_id")["property_id"].count().tolist() == [5, 5, 5, 5]


def test_requested_factors_are_reduced_for_small_corpora_with_a_note():
    n, note, count = choose_n_factors(10, np.zeros((6, 40)))
    assert n == 5 and "reduced n_factors from 10 to 5" in note and count is None


def test_too_few_properties_or_documents_is_a_clear_error():
    with pytest.raises(FactorModelError, match="at least 2 properties"):
        choose_n_factors(None, np.zeros((100, 1)))
    with pytest.raises(FactorModelError, match="at least 3 training documents"):
        choose_n_factors(None, np.zeros((2, 10)))


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
