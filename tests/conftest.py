"""Shared fixtures. Every test runs offline: no model hub, no analytics, no telemetry."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO = Path(__file__).resolve().parents[1]
# The asset keys as users' scripts, schedules and checks name them, in lineage order.
STAGES = [
    "raw_documents",
    "property_proposals",
    "property_vocabulary",
    "compatibility_encoder",
    "property_scores",
    "latent_factors",
    "baseline_representations",
    "downstream_evaluation",
]

SHARED_DATA_DIR = REPO.parent / "shared" / "data"

# The asset tests need a small CSV dataset beside the shipped demo. Partitions are read from the catalogue when
# the definitions are imported, so the test catalogue is set up here, before any test imports them.
TEST_ROOT = Path(tempfile.mkdtemp(prefix="instructlf-tests-"))
TEST_CATALOGUE = TEST_ROOT / "catalogue"
TEST_DATA = TEST_ROOT / "data"
TINY_ENTRY = """
goal: What aspects of a movie make a viewer recommend it to a friend?
corpus: {path: tiny/reviews.csv, id_field: doc_id, text_field: text, label_fields: [recommended]}
split: {valid_fraction: 0.15, test_fraction: 0.25}
prompt: {properties_per_document: 4, offline_strategy: clauses}
task: {type: planted_factors, target: recommended}
n_factors: 4
"""
# `tiny` keeps the per-document clause proposer, whose proposal step runs in chunks (Dask tests); the demo entry,
# a copy of datasets/demo.yaml, runs the default `candidates` strategy through the same graph.


def _write_test_catalogue() -> None:
    from instructlf_assets.core.demo_corpus import generate_demo_corpus

    TEST_CATALOGUE.mkdir(parents=True)
    (TEST_DATA / "tiny").mkdir(parents=True)
    shutil.copy(REPO / "datasets" / "demo.yaml", TEST_CATALOGUE / "demo.yaml")
    (TEST_CATALOGUE / "tiny.yaml").write_text(TINY_ENTRY)
    generate_demo_corpus(90, seed=7)[["doc_id", "text", "recommended"]].to_csv(
        TEST_DATA / "tiny" / "reviews.csv", index=False
    )


_write_test_catalogue()
os.environ["INSTRUCTLF_CATALOGUE"] = str(TEST_CATALOGUE)
os.environ["INSTRUCTLF_DATA_DIR"] = str(TEST_DATA)


def stop_process_group(process, timeout_s: float = 30) -> None:
    """SIGTERM a process started with `start_new_session=True` and its children (dagster dev's code server),
    then SIGKILL what is still there after `timeout_s`."""
    import signal
    import subprocess

    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def hashed_embedder(dim: int = 256):
    """A deterministic bag-of-words embedder: texts sharing words are similar. Fast stand-in for MiniLM."""

    def embed(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[row, zlib.crc32(word.encode()) % dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1, norms)

    return embed


@pytest.fixture
def fake_embed():
    return hashed_embedder()


@pytest.fixture(scope="session")
def base_model():
    from instructlf_assets.core.embedding import base_model_path, load_encoder

    return load_encoder(str(base_model_path()))


# The shortest fine-tune the asset tests use (4 steps of 16 pairs): the graph's cost is then mostly imports.
FAST_TRAINING = {"compatibility_encoder": {"config": {"max_train_pairs": 64, "batch_size": 16, "max_seq_length": 96}}}


@dataclass
class PipelineRun:
    """One materialization of the whole graph, and a copy of its key artifacts taken as soon as it finished."""

    result: object
    instance: object
    resources: dict
    storage: Path
    proposals: object
    vocabulary: object
    scores: np.ndarray
    factors: object
    fitted_on: dict


@pytest.fixture(scope="session")
def tiny_in_process(tmp_path_factory):
    """`tiny` (90 documents) materialized in-process: the asset tests' subject and the executors' reference.

    Later tests overwrite some of its artifacts on purpose (a degenerate encoder, bad input), so what other
    tests compare against is the copy taken right after this run.
    """
    import dagster as dg

    from instructlf_assets.assets import PIPELINE, SOURCES
    from instructlf_assets.partitions import PARTITIONS_NAME
    from resources import EncoderResource, InstructLFIOManager, ProposerResource
    from resources.storage import read_artifact

    storage = tmp_path_factory.mktemp("storage")
    fitted_on: dict[str, object] = {}
    resources = {
        "io_manager": InstructLFIOManager(base_dir=str(storage)),
        "encoder": EncoderResource(),
        "proposer": ProposerResource(cache_dir=str(storage / "llm_cache")),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PARTITIONS_NAME, ["demo", "tiny"])
        with record_what_is_fitted(fitted_on):  # this run's fits only, not later tests'
            result = dg.materialize(
                [*SOURCES, *PIPELINE],
                partition_key="tiny",
                instance=instance,
                resources=resources,
                run_config=dg.RunConfig(FAST_TRAINING),
                raise_on_error=False,
            )

        def artifact(name: str):
            return read_artifact(storage / name / "tiny")

        yield PipelineRun(
            result=result,
            instance=instance,
            resources=resources,
            storage=storage,
            proposals=artifact("property_proposals") if result.success else None,
            vocabulary=artifact("property_vocabulary") if result.success else None,
            scores=np.array(artifact("property_scores").values) if result.success else None,
            factors=artifact("latent_factors") if result.success else None,
            fitted_on=fitted_on,
        )


@contextlib.contextmanager
def record_what_is_fitted(fitted_on: dict):
    """Wrap every unsupervised fit of the pipeline to record what it was given; behaviour is unchanged."""
    import instructlf_assets.core.factors as factors
    import instructlf_assets.encoder as encoder
    import instructlf_assets.vocabulary as vocabulary

    def spy(module, name, record):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            record(*args, **kwargs)
            return real(*args, **kwargs)

        return module, name, wrapper

    patches = [
        spy(
            vocabulary,
            "build_vocabulary",
            lambda proposals, *a, **k: fitted_on.update(vocabulary=set(proposals["doc_id"])),
        ),
        spy(encoder, "fine_tune", lambda model, pairs, *a, **k: fitted_on.update(encoder=set(pairs["anchor"]))),
        spy(factors, "fit_factors", lambda train, *a, **k: fitted_on.update(corex=np.array(train))),
    ]
    with pytest.MonkeyPatch.context() as monkeypatch:
        for module, name, wrapper in patches:
            monkeypatch.setattr(module, name, wrapper)
        yield
