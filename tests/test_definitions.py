"""The Dagster definitions: the graph users' scripts refer to, with versions, partitions and checks."""

import subprocess
import sys
from pathlib import Path

import dagster as dg

from definitions import defs
from instructlf_assets.assets import OBSERVE_JOB, PIPELINE_JOB
from instructlf_assets.partitions import dataset_partitions
from tests.conftest import REPO, STAGES


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def(PIPELINE_JOB) and defs.resolve_job_def(OBSERVE_JOB)


def test_every_stage_is_a_partitioned_versioned_asset_with_checks():
    graph = defs.resolve_asset_graph()
    for name in STAGES:
        node = graph.get(dg.AssetKey(name))
        assert node.code_version, name
        assert node.partitions_def == dataset_partitions, name
        assert graph.get_check_keys_for_assets({node.key}), f"{name} has no asset checks"


def test_lineage_follows_the_design():
    graph = defs.resolve_asset_graph()
    parents = {name: {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys} for name in STAGES}
    assert parents["raw_documents"] == {"corpus_file"}
    assert parents["property_proposals"] == {"goal_spec", "raw_documents"}
    assert "compatibility_encoder" in parents["property_scores"]
    assert parents["downstream_evaluation"] >= {"latent_factors"}


def test_workspace_loads_for_dagster_dev():
    """What `dagster dev -w workspace.yaml` loads is what the CLI runs."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
