"""The latent_factors asset keeps factor ids across refits and shows the drift in its metadata."""

from __future__ import annotations

import dagster as dg
import pytest

from instructlf_assets.assets import PIPELINE, SOURCES
from instructlf_assets.partitions import PARTITIONS_NAME
from resources import EncoderResource, InstructLFIOManager, ProposerResource
from resources.storage import read_artifact
from tests.core.test_factor_identity import ASPECTS, aspect_of, write_planted_upstream


def materialize_latent_factors(instance, resources: dict, run_config) -> dict:
    """Materialize only `tiny`'s latent_factors (its upstream already in storage); the materialization's metadata."""
    result = dg.materialize(
        [*SOURCES, *PIPELINE],
        selection=["latent_factors"],
        partition_key="tiny",
        instance=instance,
        resources=resources,
        run_config=run_config,
    )
    [event] = result.get_asset_materialization_events()
    return event.materialization.metadata


@pytest.fixture
def refits(tmp_path):
    """Materialize only latent_factors of `tiny` on planted upstream artifacts written straight into storage."""
    storage = tmp_path / "storage"
    resources = {
        "io_manager": InstructLFIOManager(base_dir=str(storage)),
        "encoder": EncoderResource(),
        "proposer": ProposerResource(cache_dir=str(tmp_path / "llm_cache")),
    }

    def refit(aspects: list[str], seed: int, data_seed: int = 0):
        write_planted_upstream(storage, aspects, data_seed)
        config = {"latent_factors": {"config": {"n_factors": len(aspects), "seed": seed}}}
        metadata = materialize_latent_factors(instance, resources, dg.RunConfig(config))
        return read_artifact(storage / "latent_factors" / "tiny"), metadata

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["tiny"])
        yield refit


def test_a_refit_with_another_seed_keeps_every_id_and_a_new_aspect_adds_one(refits):
    first, metadata = refits(ASPECTS[:5], seed=0)
    assert "First fit" in metadata["drift"].value and metadata["n_new"].value == 5
    again, metadata = refits(ASPECTS[:5], seed=1)
    assert aspect_of(again) == aspect_of(first)
    assert [metadata[f"n_{s}"].value for s in ("kept", "changed", "new", "gone")] == [5, 0, 0, 0]
    assert "5 kept, 0 changed, 0 new, 0 gone" in metadata["drift"].value
    grown, metadata = refits(ASPECTS, seed=0, data_seed=3)
    assert [metadata[f"n_{s}"].value for s in ("kept", "changed", "new", "gone")] == [5, 0, 1, 0]
    assert "| f05 | new |" in metadata["drift"].value and aspect_of(grown)["f05"] == "humour"
    assert {i: a for i, a in aspect_of(grown).items() if i != "f05"} == aspect_of(first)
    assert "data:image/png;base64," in metadata["heat_map"].value
