"""The whole asset graph materialized through Dagster on a small CSV dataset, checks included."""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from definitions import defs
from instructlf_assets.assets import PIPELINE, SOURCES
from instructlf_assets.staleness import stale_or_missing
from resources import EncoderResource
from resources.storage import read_artifact


@pytest.fixture(scope="module")
def materialized(tiny_in_process):
    return tiny_in_process.result, tiny_in_process.instance, tiny_in_process.resources


def test_every_stage_materializes(materialized):
    result, *_ = materialized
    assert result.success
    done = {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
    assert done == {asset.key.to_user_string() for asset in PIPELINE}


def test_blocking_checks_pass_and_every_asset_is_checked(materialized):
    result, *_ = materialized
    evaluations = result.get_asset_check_evaluations()
    checked = {e.asset_key.to_user_string() for e in evaluations}
    assert checked == {asset.key.to_user_string() for asset in PIPELINE}
    blocking = {
        "splits_are_usable",
        "failures_within_limit",
        "properties_are_short_phrases",
        "vocabulary_is_large_enough",
        "scores_are_valid",
        "factor_model_is_sound",
    }
    assert all(e.passed for e in evaluations if e.check_name in blocking)


def test_materializations_carry_metadata_for_the_ui(materialized):
    result, *_ = materialized
    by_asset = {
        e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()
    }
    assert by_asset["raw_documents"]["dagster/row_count"].value == 90
    assert "| factor |" in by_asset["latent_factors"]["factors"].value
    assert "data:image/png;base64," in by_asset["latent_factors"]["heat_map"].value
    assert by_asset["compatibility_encoder"]["n_steps"].value >= 1
    assert "factors/accuracy/test" in by_asset["downstream_evaluation"]
    assert "data:image/png;base64," in by_asset["downstream_evaluation"]["metric_bars"].value


def test_nothing_is_stale_after_a_full_materialization(materialized):
    _, instance, _ = materialized
    assert stale_or_missing(instance, defs.resolve_asset_graph(), "tiny") == []
    assert len(stale_or_missing(instance, defs.resolve_asset_graph(), "demo")) == len(PIPELINE)


def test_bad_input_fails_the_partition_and_keeps_what_was_materialized(materialized, tmp_path, monkeypatch):
    _, instance, resources = materialized
    storage = Path(resources["io_manager"].base_dir)
    before = read_artifact(storage / "raw_documents" / "tiny")
    factors_before = read_artifact(storage / "latent_factors" / "tiny").factors
    broken = before[["doc_id", "text"]].copy()
    broken.loc[len(broken)] = [broken["doc_id"].iloc[0], "a duplicate id"]
    (tmp_path / "tiny").mkdir()
    broken.to_csv(tmp_path / "tiny" / "reviews.csv", index=False)
    monkeypatch.setenv("INSTRUCTLF_DATA_DIR", str(tmp_path))
    result = dg.materialize(
        [*SOURCES, *PIPELINE],
        selection=["raw_documents"],
        partition_key="tiny",
        instance=instance,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    pd.testing.assert_frame_equal(read_artifact(storage / "raw_documents" / "tiny"), before)
    pd.testing.assert_frame_equal(read_artifact(storage / "latent_factors" / "tiny").factors, factors_before)


def test_code_version_bump_marks_that_stage_and_its_descendants_only(materialized):
    _, instance, resources = materialized
    bumped = [
        asset.map_asset_specs(lambda spec: spec.replace_attributes(code_version="bumped"))
        if asset.key == dg.AssetKey("property_scores")
        else asset
        for asset in PIPELINE
    ]
    changed = dg.Definitions(assets=[*SOURCES, *bumped], resources=resources)
    stale = [key.to_user_string() for key in stale_or_missing(instance, changed.resolve_asset_graph(), "tiny")]
    assert stale == ["property_scores", "latent_factors", "baseline_representations", "downstream_evaluation"]


class DegenerateEncoder(EncoderResource):
    """An encoder whose weights went NaN (a diverged fine-tune): every embedding is NaN."""

    def embedder(self, model, cache_key=None):
        return lambda texts: np.full((len(texts), 384), np.nan, dtype=np.float32)


def materialization_count(instance, asset: str) -> int:
    return len(instance.fetch_materializations(dg.AssetKey(asset), limit=100).records)


def test_nan_scores_from_a_degenerate_encoder_stop_at_the_blocking_check_before_anything_is_stored(materialized):
    _, instance, resources = materialized
    storage = Path(resources["io_manager"].base_dir)
    factors_before = read_artifact(storage / "latent_factors" / "tiny").factors
    scores_before = np.array(read_artifact(storage / "property_scores" / "tiny").values)
    stored_before = materialization_count(instance, "property_scores")
    result = dg.materialize(
        [*SOURCES, *PIPELINE],
        selection=["property_scores", "latent_factors"],
        partition_key="tiny",
        instance=instance,
        resources={**resources, "encoder": DegenerateEncoder()},
        raise_on_error=False,
    )
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "scores_are_valid"]
    assert not check.passed and "n_nonfinite" in (check.description or "")
    assert not result.success
    assert not result.get_asset_materialization_events(), "the bad matrix is neither stored nor recorded"
    assert materialization_count(instance, "property_scores") == stored_before
    np.testing.assert_array_equal(np.array(read_artifact(storage / "property_scores" / "tiny").values), scores_before)
    pd.testing.assert_frame_equal(read_artifact(storage / "latent_factors" / "tiny").factors, factors_before)


def test_a_matrix_over_the_threshold_is_streamed_to_disk_and_stores_the_same_values(materialized, tiny_in_process):
    _, instance, resources = materialized
    storage = Path(resources["io_manager"].base_dir)
    in_memory = tiny_in_process.scores  # as first built, in memory
    result = dg.materialize(
        [*SOURCES, *PIPELINE],
        selection=["property_scores"],
        partition_key="tiny",
        instance=instance,
        resources=resources,
        run_config={"ops": {"property_scores": {"config": {"stream_above_mb": 0, "chunk_size": 7}}}},
    )
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["built"].value == "streamed to disk"
    stored = read_artifact(storage / "property_scores" / "tiny").values
    np.testing.assert_allclose(stored, in_memory, atol=1e-6)
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_every_stage_records_the_full_config_it_ran_with(materialized):
    """Each stage's whole Config (defaults included) is in its materialization, for the report and `--config`."""
    from instructlf_assets.assets import STAGE_CONFIGS
    from tests.conftest import FAST_TRAINING

    result, *_ = materialized
    recorded = {
        e.asset_key.to_user_string(): e.materialization.metadata.get("config")
        for e in result.get_asset_materialization_events()
    }
    for name, config_class in STAGE_CONFIGS.items():
        given = FAST_TRAINING.get(name, {}).get("config", {})
        assert recorded[name].data == config_class(**given).model_dump(mode="json"), name
    assert recorded["compatibility_encoder"].data["max_train_pairs"] == 64, "the run's own config, not defaults"
