"""`scored_documents`: a batch file scored as its own materialization, with lineage to the model it used."""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from instructlf_assets.api import load_model
from instructlf_assets.assets import PIPELINE, SOURCES
from instructlf_assets.core.errors import CorpusError
from instructlf_assets.scoring_assets import BATCH_PARTITIONS_NAME, MODEL_INPUTS, batch_file, scored_documents
from resources.storage import read_artifact


@pytest.fixture(scope="module")
def tiny(tiny_in_process):
    assert tiny_in_process.result.success
    return tiny_in_process


def test_a_batch_file_is_scored_as_its_own_partition_with_the_models_versions(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTLF_DATA_DIR", str(tmp_path))
    texts = ["The jokes landed and the cast had real chemistry.", "Too long, and the ending made no sense."]
    (tmp_path / "tiny" / BATCH_PARTITIONS_NAME).mkdir(parents=True)
    pd.DataFrame({"doc_id": ["n1", "n2"], "text": texts}).to_csv(
        tmp_path / "tiny" / BATCH_PARTITIONS_NAME / "week1.csv", index=False
    )
    tiny.instance.add_dynamic_partitions(BATCH_PARTITIONS_NAME, ["week1"])
    key = dg.MultiPartitionKey({"dataset": "tiny", "batch": "week1"})
    result = dg.materialize(
        [*SOURCES, *PIPELINE, scored_documents],
        selection=[scored_documents],
        partition_key=key,
        instance=tiny.instance,
        resources=tiny.resources,
    )
    [event] = result.get_asset_materialization_events()
    stored = read_artifact(tiny.storage / "scored_documents" / str(key))
    expected = load_model("tiny", storage=tiny.storage).transform(texts, doc_ids=["n1", "n2"])
    factor_ids = [c for c in expected.columns if c.startswith("f")]
    np.testing.assert_allclose(stored[factor_ids].to_numpy(), expected[factor_ids].to_numpy(), atol=1e-5)
    assert stored["top_properties"].map(json.loads).tolist() == expected["top_properties"].tolist()
    metadata = event.materialization.metadata
    factors_record = tiny.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("latent_factors"), asset_partitions=["tiny"]), limit=1
    ).records[0]
    assert metadata["model"].data["latent_factors"]["run_id"] == factors_record.run_id
    assert (
        metadata["model"].data["latent_factors"]["data_version"]
        == factors_record.asset_materialization.tags["dagster/data_version"]
    )
    tags = event.materialization.tags or {}
    assert {f"dagster/input_data_version/{name}" for name in MODEL_INPUTS} <= set(tags), "Dagster's own lineage"


def test_a_batch_key_that_is_not_a_plain_file_name_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("INSTRUCTLF_DATA_DIR", str(tmp_path))
    with pytest.raises(CorpusError, match="letters, digits"):
        batch_file("tiny", "../secrets")
    with pytest.raises(CorpusError, match="exactly one of"):
        batch_file("tiny", "missing")


def test_the_definitions_hold_the_scoring_asset_outside_the_pipeline_job():
    from definitions import defs

    assert defs.resolve_assets_def("scored_documents") is not None
    assert scored_documents not in PIPELINE
