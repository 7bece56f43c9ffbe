"""Each text runs through the encoder once per model and corpus version, across every stage and the baselines.

The subject is the whole graph on `tiny` with the projection-head strategy (the all-states ALFWorld setting's),
through Dagster with a real MiniLM, with every text that reaches a transformer recorded.
"""

from collections import Counter

import dagster as dg
import pytest

from instructlf_assets.assets import PIPELINE, SOURCES
from instructlf_assets.partitions import PARTITIONS_NAME
from resources import EncoderResource, InstructLFIOManager, ProposerResource
from resources.storage import read_artifact

ENCODED: list[str] = []
HEAD = {"compatibility_encoder": {"config": {"strategy": "projection_head", "max_train_pairs": 64}}}


class RecordingEncoder(EncoderResource):
    """The real encoder, recording each text that reaches a transformer (what the cache is there to avoid)."""

    def model_embedder(self, model):
        inner = super().model_embedder(model)

        def embed(texts):
            ENCODED.extend(texts)
            return inner(texts)

        return embed


@pytest.fixture(scope="module")
def run_twice(tmp_path_factory):
    storage = tmp_path_factory.mktemp("storage")
    resources = {
        "io_manager": InstructLFIOManager(base_dir=str(storage)),
        "encoder": RecordingEncoder(embedding_cache=str(storage / "embedding_cache")),
        "proposer": ProposerResource(cache_dir=str(storage / "llm_cache")),
    }
    encoded = []
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["tiny"])
        for _ in range(2):
            ENCODED.clear()
            result = dg.materialize(
                [*SOURCES, *PIPELINE],
                partition_key="tiny",
                instance=instance,
                resources=resources,
                run_config=dg.RunConfig(HEAD),
            )
            assert result.success
            encoded.append(Counter(ENCODED))
    documents = read_artifact(storage / "raw_documents" / "tiny")
    yield documents, encoded, storage


@pytest.mark.slow
def test_every_document_reaches_the_encoder_exactly_once_in_a_run(run_twice):
    documents, (first, _), _ = run_twice
    counts = {text: first[text] for text in documents["text"]}
    assert all(n == 1 for n in counts.values()), {t[:40]: n for t, n in counts.items() if n != 1}
    assert max(first.values()) == 1, "no text of any kind is encoded twice"


@pytest.mark.slow
def test_a_rerun_of_every_stage_encodes_nothing_again(run_twice):
    _, (_, second), _ = run_twice
    assert sum(second.values()) == 0


@pytest.mark.slow
def test_projection_head_scores_equal_the_saved_model_run_end_to_end(run_twice):
    """Scores read from cached base embeddings through the head are what loading the stored model gives."""
    import numpy as np

    from instructlf_assets.core.embedding import encode

    documents, _, storage = run_twice
    encoder = read_artifact(storage / "compatibility_encoder" / "tiny")
    assert encoder.report["options"]["strategy"] == "projection_head"
    vocabulary = read_artifact(storage / "property_vocabulary" / "tiny")
    scores = np.asarray(read_artifact(storage / "property_scores" / "tiny").values)
    model = EncoderResource().load_fresh(str(encoder.model_dir))
    direct = encode(model, documents["text"].tolist()) @ encode(model, vocabulary["text"].tolist()).T
    np.testing.assert_allclose(scores, direct, atol=2e-5)
