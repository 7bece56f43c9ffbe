import pandas as pd

from instructlf_assets.core.catalogue import DatasetSpec, get_dataset
from instructlf_assets.core.demo_corpus import generate_demo_corpus
from instructlf_assets.core.phrases import normalize_phrase
from resources import EncoderResource
from resources.proposer import ProposerResource

from .conftest import hashed_embedder


class HashedEncoder(EncoderResource):
    """The base encoder replaced by the tests' bag-of-words embedder: exact, and fast."""

    def base_embedder(self, max_seq_length=None):
        return hashed_embedder()


def with_strategy(strategy: str) -> DatasetSpec:
    spec = get_dataset("tiny").model_dump()
    spec["prompt"] = {**spec["prompt"], "offline_strategy": strategy, "candidates": {"min_df": 3}}
    return DatasetSpec.model_validate(spec)


def demo_documents(n: int = 80) -> pd.DataFrame:
    documents = generate_demo_corpus(n, seed=3)[["doc_id", "text"]]
    return documents.assign(split=["valid" if i % 5 == 0 else "train" for i in range(n)])


def test_candidates_are_the_default_offline_strategy_and_clauses_stay_an_option():
    assert get_dataset("demo").prompt.offline_strategy == "candidates"
    run = ProposerResource(cache_dir="unused").propose(demo_documents(20), with_strategy("clauses"), HashedEncoder())
    assert run.stats["offline_strategy"] == "clauses" and len(run.table) > 0


def test_candidates_strategy_proposes_recurring_phrases_each_document_states():
    documents = demo_documents()
    run = ProposerResource(cache_dir="unused").propose(documents, with_strategy("candidates"), HashedEncoder())
    assert run.stats["offline_strategy"] == "candidates" and run.stats["candidates_kept"] > 0
    texts = dict(zip(documents["doc_id"], documents["text"], strict=True))
    for doc_id, phrase in zip(run.table["doc_id"], run.table["property"], strict=True):
        assert f" {phrase} " in f" {normalize_phrase(texts[doc_id])} "
    support = run.table.groupby("property")["doc_id"].nunique()
    assert support.median() >= 3  # recurring, unlike clauses


def test_candidates_come_from_training_documents_only():
    documents = demo_documents()
    valid = documents["split"] == "valid"
    planted = "Its zeppelin hangar matters."
    documents.loc[valid, "text"] = documents.loc[valid, "text"] + " " + planted
    run = ProposerResource(cache_dir="unused").propose(documents, with_strategy("candidates"), HashedEncoder())
    assert not run.table["property"].str.contains("zeppelin").any()


def test_candidates_use_one_vocabulary_however_the_step_is_chunked():
    documents = demo_documents()
    spec = with_strategy("candidates")
    proposer = ProposerResource(cache_dir="unused")
    chunked = proposer.propose_in_chunks(documents, spec, HashedEncoder(), chunk_size=7)
    pd.testing.assert_frame_equal(chunked.table, proposer.propose(documents, spec, HashedEncoder()).table)
