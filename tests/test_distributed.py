"""Beyond one machine by configuration only: the Dask executor and an S3 storage root give the same pipeline."""

import json
import logging
import socket
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import yaml

from instructlf_assets.assets import PIPELINE_JOB
from resources import EncoderResource, ProposerResource
from resources.parallel import map_chunks
from resources.storage import join_location, read_artifact
from tests.chat_server import MODEL, serve
from tests.conftest import FAST_TRAINING, STAGES, TEST_CATALOGUE, hashed_embedder
from tests.test_cli import run_cli
from tests.test_llm_pipeline import SentenceListServer

BUCKET = "instructlf-test"
ROOT = f"s3://{BUCKET}/runs"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """An S3-compatible server (moto) on 127.0.0.1 with one bucket, and the variables that point boto at it."""
    import s3fs
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "INSTRUCTLF_LOCAL_COPIES": str(tmp_path_factory.mktemp("local-copies")),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir(BUCKET)
        yield env
        s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.fixture(scope="module")
def cluster_run(s3_endpoint, tmp_path_factory):
    """One `instructlf run tiny` as on a cluster, configured by environment only: every step a task on a local
    Dask cluster's worker process, the proposals in chunks of 16 documents, every artifact under s3://."""
    tmp = tmp_path_factory.mktemp("cluster")
    ops = {**FAST_TRAINING, "property_proposals": {"config": {"chunk_size": 16}}}
    (tmp / "run.yaml").write_text(yaml.safe_dump({"ops": ops}))
    env = {
        **s3_endpoint,
        "INSTRUCTLF_EXECUTOR": "dask",
        "INSTRUCTLF_DASK_WORKERS": "1",
        "INSTRUCTLF_STORAGE": ROOT,
    }
    started = time.perf_counter()
    completed = run_cli(["run", "tiny", "--config", str(tmp / "run.yaml")], tmp / "home", TEST_CATALOGUE, extra_env=env)
    print(f"dask + s3 run of tiny: {time.perf_counter() - started:.1f} s")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "materialized raw_documents, property_proposals" in completed.stdout
    return tmp / "home"


def assert_same_factors(root: str, reference) -> None:
    """Same proposals, vocabulary, scores and factors as the in-process reference run (same seed)."""

    def stored(stage: str):
        return read_artifact(join_location(root, stage, "tiny"))

    proposals = stored("property_proposals")
    columns = ["doc_id", "rank", "property"]
    pd.testing.assert_frame_equal(proposals[columns], reference.proposals[columns])
    np.testing.assert_allclose(proposals["relevance"], reference.proposals["relevance"], atol=1e-5)
    pd.testing.assert_frame_equal(stored("property_vocabulary"), reference.vocabulary)
    np.testing.assert_allclose(stored("property_scores").values, reference.scores, atol=1e-5)
    factors = stored("latent_factors")
    assigned = ["property_id", "text", "factor_id"]
    pd.testing.assert_frame_equal(factors.assignments[assigned], reference.factors.assignments[assigned])
    named = ["factor_id", "name", "n_properties", "top_properties"]
    pd.testing.assert_frame_equal(factors.factors[named], reference.factors.factors[named])
    # CorEx is iterative: score differences at float32 rounding (other thread counts) move weights slightly.
    np.testing.assert_allclose(factors.weights, reference.factors.weights, atol=0.02)


def test_dask_executor_materializes_the_graph_with_the_in_process_factors(cluster_run, tiny_in_process):
    """The same factors (and proposals, vocabulary, scores) as the in-process run with local storage."""
    assert tiny_in_process.result.success
    with dg.DagsterInstance.from_config(str(cluster_run)) as instance:
        [run] = instance.get_runs(limit=1)
        assert run.job_name == PIPELINE_JOB and run.status == dg.DagsterRunStatus.SUCCESS
        [record] = instance.fetch_materializations(dg.AssetKey("property_proposals"), limit=1).records
        metadata = record.asset_materialization.metadata
    assert metadata["chunks_ran_on"].value == "dask"
    assert metadata["n_chunks"].value == -(-metadata["n_documents"].value // 16) > 1
    assert_same_factors(ROOT, tiny_in_process)


def test_chunks_become_dask_tasks_when_the_step_runs_on_a_worker():
    distributed = pytest.importorskip("distributed")

    def where(chunk):
        return chunk, distributed.get_worker().get_current_task()

    chunks = [[1, 2], [3], [4, 5]]
    assert [result for result, _ in map_chunks(lambda c: (c, None), chunks)] == chunks
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        ran = client.submit(map_chunks, where, chunks, pure=False).result()
    assert [result for result, _ in ran] == chunks
    assert len({task for _, task in ran}) == len(chunks), "one Dask task per chunk"


def test_every_artifact_lands_in_s3_committed_by_its_manifest(cluster_run):
    """Each stage's files under a version prefix of its s3:// location, named by the manifest written last."""
    import s3fs

    with dg.DagsterInstance.from_config(str(cluster_run)) as instance:
        uris = {
            stage: instance.fetch_materializations(dg.AssetKey(stage), limit=1)
            .records[0]
            .asset_materialization.metadata["dagster/uri"]
            .value
            for stage in STAGES
        }
    assert uris == {stage: f"{ROOT}/{stage}/tiny" for stage in STAGES}
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    stored = set(fs.find(f"{BUCKET}/runs"))
    for stage in STAGES:
        manifest = json.loads(fs.cat_file(f"{BUCKET}/runs/{stage}/tiny/artifact.json"))
        assert {f"{BUCKET}/runs/{stage}/tiny/versions/{manifest['version']}/{f}" for f in manifest["files"]} <= stored
    encoder = json.loads(fs.cat_file(f"{BUCKET}/runs/compatibility_encoder/tiny/artifact.json"))["files"]
    assert {"model/config.json", "model/model.safetensors", "report.json"} <= set(encoder)
    assert not (cluster_run / "instructlf").exists(), "nothing written to the local default storage"


def test_llm_cache_follows_the_storage_root_one_object_per_reply(s3_endpoint, monkeypatch, tmp_path):
    """With INSTRUCTLF_STORAGE=s3://..., the proposer's cache is objects there; a rerun makes no call."""
    import s3fs

    from instructlf_assets.core.catalogue import get_dataset
    from resources import EncoderResource

    monkeypatch.setenv("INSTRUCTLF_STORAGE", f"s3://{BUCKET}/llm-run")
    documents = pd.DataFrame({"doc_id": ["a", "b", "c"], "text": ["Great acting.", "Dull plot.", "Loud music."]})
    with serve(SentenceListServer()) as server:
        for name, value in {"INSTRUCTLF_PROPOSER": "openai", "OPENAI_BASE_URL": server.base_url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("INSTRUCTLF_LLM_MODEL", MODEL)
        from definitions import resources_from_environment

        proposer = resources_from_environment()["proposer"]
        assert proposer.cache_dir == f"s3://{BUCKET}/llm-run/llm_cache"
        first = proposer.propose(documents, get_dataset("tiny"), EncoderResource())
        again = proposer.propose(documents, get_dataset("tiny"), EncoderResource())
        assert len(server.calls) == 3 and set(server.calls.values()) == {1}, first.failed["reason"].tolist()
    pd.testing.assert_frame_equal(first.table, again.table)
    replies = s3fs.S3FileSystem().find(f"{BUCKET}/llm-run/llm_cache/replies")
    assert len(replies) == 3 and all(r.endswith(".json") for r in replies)


class HashedEncoder(EncoderResource):
    """The offline proposer's encoder replaced by the tests' bag-of-words embedder: exact, and fast."""

    def base_embedder(self, max_seq_length=None):
        return hashed_embedder()


def propose_in_chunks_of_seven(documents: pd.DataFrame):
    """The step's side of a chunked proposal, resources built where it runs (Dagster resources do not pickle)."""
    from instructlf_assets.core.catalogue import get_dataset

    return ProposerResource(cache_dir="unused").propose_in_chunks(documents, get_dataset("tiny"), HashedEncoder(), 7)


def test_proposals_in_chunks_are_the_single_pass_table_here_and_on_dask_workers():
    distributed = pytest.importorskip("distributed")
    from instructlf_assets.core.catalogue import get_dataset
    from instructlf_assets.core.demo_corpus import generate_demo_corpus

    documents = generate_demo_corpus(40, seed=3)[["doc_id", "text"]]
    single = ProposerResource(cache_dir="unused").propose(documents, get_dataset("tiny"), HashedEncoder()).table
    serial = propose_in_chunks_of_seven(documents)
    assert serial.stats["n_chunks"] == 6 and serial.stats["chunks_ran_on"] == "this process"
    pd.testing.assert_frame_equal(serial.table, single)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        spread = client.submit(propose_in_chunks_of_seven, documents, pure=False).result()
    assert spread.stats["chunks_ran_on"] == "dask" and spread.stats["n_chunks"] == 6
    pd.testing.assert_frame_equal(spread.table, single)
