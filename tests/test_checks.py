"""Every data-quality check can fail: each is driven here with the bad input it exists to catch.

The check builders are the functions the assets call on the value in hand, before anything is stored; a check
that passed on everything would show green in the UI and protect nothing.
"""

import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.artifacts import FactorModel
from instructlf_assets.core.catalogue import TaskSpec
from instructlf_assets.core.corpus import CorpusLoad
from instructlf_assets.core.dedup import DedupOptions, build_vocabulary
from instructlf_assets.documents import document_checks
from instructlf_assets.encoder import encoder_checks
from instructlf_assets.evaluation import evaluation_checks, split_check
from instructlf_assets.factors import factor_checks
from instructlf_assets.proposals import proposal_checks
from instructlf_assets.scores import row_statistics, score_checks
from instructlf_assets.vocabulary import VocabularyConfig, vocabulary_checks
from tests.conftest import hashed_embedder


def outcome(results) -> dict[str, bool]:
    return {r.check_name: r.passed for r in results}


def corpus(n: int, split: list[str] | None = None, text=lambda i: f"review {i} of a film") -> pd.DataFrame:
    split = split or ["train"] * n
    return pd.DataFrame({"doc_id": [f"d{i}" for i in range(n)], "text": [text(i) for i in range(n)], "split": split})


def spec_with(task: TaskSpec):
    from instructlf_assets.core.catalogue import get_dataset
    from tests.conftest import TEST_CATALOGUE

    return get_dataset("tiny", TEST_CATALOGUE).model_copy(update={"task": task})


def test_splits_are_usable_fails_on_too_few_training_documents():
    planted = spec_with(TaskSpec(type="planted_factors", target="recommended"))
    ok = corpus(14, ["train"] * 12 + ["test"] * 2)
    assert outcome(document_checks(planted, CorpusLoad(ok, "x", 0)))["splits_are_usable"]
    few = corpus(9, ["train"] * 8 + ["test"])
    [usable, _] = document_checks(planted, CorpusLoad(few, "x", 0))
    assert not usable.passed and "split train has 8 (needs >= 10)" in usable.description


def test_splits_fit_the_task_fails_when_a_split_the_task_needs_is_empty():
    no_test = corpus(12)
    check = split_check("tiny", TaskSpec(type="planted_factors"), no_test)
    assert not check.passed and "split test has 0 documents (task 'planted_factors' needs >= 1)" in check.description
    no_valid = corpus(12, ["train"] * 10 + ["test"] * 2)
    assert not split_check("tiny", TaskSpec(type="recommendation"), no_valid).passed
    assert split_check("tiny", TaskSpec(type="classification", cross_validate=True), corpus(12)).passed
    assert split_check("tiny", TaskSpec(type="planted_factors"), corpus(14, ["train"] * 12 + ["test"] * 2)).passed


def test_splits_are_usable_fails_when_every_training_text_is_the_same():
    identical = corpus(20, ["train"] * 18 + ["test"] * 2, text=lambda i: "the same review")
    planted = spec_with(TaskSpec(type="planted_factors", target="recommended"))
    [usable, _] = document_checks(planted, CorpusLoad(identical, "x", 0))
    assert not usable.passed and "distinct train texts has 1" in usable.description


def test_loaded_without_repairs_warns_on_truncation():
    planted = spec_with(TaskSpec(type="planted_factors"))
    repaired = outcome(document_checks(planted, CorpusLoad(corpus(12, ["train"] * 11 + ["test"]), "x", 3)))
    assert repaired["loaded_without_repairs"] is False


def test_proposal_checks_fail_on_too_many_failures_and_on_echoes_or_overlong_properties():
    spec = spec_with(TaskSpec())
    documents = corpus(10)
    table = pd.DataFrame({"doc_id": ["d0", "d1"], "property": ["dark humour", "x" * 121]})
    failed = pd.DataFrame({"doc_id": [f"d{i}" for i in range(2, 10)], "reason": "empty reply"})
    results = outcome(proposal_checks(spec, documents, table, failed, max_failure_share=0.2))
    assert results == {"failures_within_limit": False, "properties_are_short_phrases": False}
    echo = pd.DataFrame({"doc_id": ["d0"], "property": [spec.goal]})
    assert not outcome(proposal_checks(spec, documents, echo, failed.head(0), 0.2))["properties_are_short_phrases"]
    fine = pd.DataFrame({"doc_id": ["d0"], "property": ["dark humour"]})
    assert all(outcome(proposal_checks(spec, documents, fine, failed.head(1), 0.2)).values())


def test_vocabulary_checks_fail_on_a_tiny_vocabulary_and_warn_on_poor_coverage():
    proposals = pd.DataFrame(
        {"doc_id": ["a", "b", "c", "d"], "property": ["dark humour", "dark humour", "slow pacing", "loud music"]}
    )
    train_ids = pd.Series(["a", "b", "c", "d", "e", "f", "g", "h"])
    vocabulary = build_vocabulary(proposals, hashed_embedder(), DedupOptions(min_support=2))
    [size, coverage] = vocabulary_checks("tiny", vocabulary, proposals, train_ids, VocabularyConfig(min_support=2))
    assert not size.passed and "lower min_support" in size.description
    assert not coverage.passed and "25%" in coverage.description
    vocabulary = build_vocabulary(proposals, hashed_embedder(), DedupOptions(min_support=1))
    results = outcome(vocabulary_checks("tiny", vocabulary, proposals, train_ids.head(4), VocabularyConfig()))
    assert results == {"vocabulary_is_large_enough": True, "vocabulary_covers_documents": True}


def test_beats_base_model_warns_when_fine_tuning_lowered_recall():
    assert outcome(encoder_checks(0.5, 0.4, 5)) == {"beats_base_model": False}
    assert outcome(encoder_checks(0.5, 0.5, 5)) == {"beats_base_model": True}


@pytest.mark.parametrize("bad", [np.nan, 1.5])
def test_scores_are_valid_fails_on_non_finite_or_out_of_range_scores(bad):
    values = np.zeros((4, 3), dtype=np.float32)
    values[2, 1] = bad
    [check] = score_checks(row_statistics(values), 4, 3)
    assert not check.passed and "1 document row(s)" in check.description
    assert not score_checks(row_statistics(np.zeros((4, 3), np.float32)), 5, 3)[0].passed, "shape mismatch"


def factor_model(weights: np.ndarray, tc: float, sizes: list[int], converged: bool = True) -> FactorModel:
    factors = pd.DataFrame({"factor_id": [f"f{i:02d}" for i in range(len(sizes))], "n_properties": sizes})
    scores = pd.DataFrame({"doc_id": ["a", "b"], **{f: [0.0, 1.0] for f in factors["factor_id"]}})
    summary = {"tc": tc, "converged": converged, "n_iter": 10}
    return FactorModel(weights, np.zeros(3), np.ones(3), pd.DataFrame(), factors, scores, summary)


def test_factor_checks_fail_on_nan_or_no_correlation_and_warn_on_empty_factors_and_no_convergence():
    good = outcome(factor_checks(factor_model(np.ones((2, 3)), 1.2, [2, 1])))
    assert all(good.values())
    nan = np.ones((2, 3))
    nan[0, 0] = np.nan
    assert not outcome(factor_checks(factor_model(nan, 1.2, [2, 1])))["factor_model_is_sound"]
    assert not outcome(factor_checks(factor_model(np.ones((2, 3)), 0.0, [2, 1])))["factor_model_is_sound"]
    empty = factor_checks(factor_model(np.ones((2, 3)), 1.2, [3, 0], converged=False))
    assert outcome(empty) == {
        "factor_model_is_sound": True,
        "every_factor_has_properties": False,
        "factor_model_converged": False,
    }
    assert "f01" in empty[1].description


def metrics(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"method": m, "metric": k, "split": s, "value": v, "n": 10, "stderr": None, "seed": 0} for m, k, s, v in rows]
    )


def test_factors_beat_majority_fails_when_factors_lose_or_when_nothing_could_be_compared():
    losing = metrics([("factors", "accuracy", "test", 0.5), ("majority", "accuracy", "test", 0.6)])
    [check] = evaluation_checks("planted_factors", losing)
    assert not check.passed and "accuracy/test (0.500 <= 0.600)" in check.description
    winning = metrics([("factors", "accuracy", "test", 0.7), ("majority", "accuracy", "test", 0.6)])
    assert evaluation_checks("planted_factors", winning)[0].passed
    nothing = metrics([("factors", "accuracy", "test", 0.7)])
    assert not evaluation_checks("classification", nothing)[0].passed
    assert evaluation_checks("none", metrics([("factors", "total_correlation", None, 3.0)]))[0].passed
