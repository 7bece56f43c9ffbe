"""Unattended runs under attack: an LLM server that dies, kill -9 mid-stage, two partitions at once.

Each test drives the real CLI in subprocesses against the loopback chat server and then checks three things:
what was materialized before the fault is intact, the next run completes, and the server never answered the
same document twice (beyond the calls that were in flight when a process was killed).
"""

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from instructlf_assets.core.demo_corpus import generate_demo_corpus
from resources.storage import read_artifact
from tests.chat_server import KEY, MODEL, serve
from tests.test_cli import CLI, REPO, run_cli
from tests.test_llm_pipeline import SentenceListServer

CONCURRENCY = 2
# Launchpad-style asset config through `instructlf run --config`: a short fine-tune keeps each run to seconds.
FAST_TRAINING = "ops: {compatibility_encoder: {config: {max_train_pairs: 64, batch_size: 16, max_seq_length: 96}}}\n"
ENTRY = """
goal: What aspects of a movie make a viewer recommend it to a friend?
corpus: {{path: {name}/reviews.csv, id_field: doc_id, text_field: text, label_fields: [recommended]}}
split: {{valid_fraction: 0.15, test_fraction: 0.25}}
prompt: {{properties_per_document: 4}}
task: {{type: planted_factors, target: recommended}}
n_factors: 3
"""


def write_dataset(catalogue: Path, data: Path, name: str, n_documents: int, seed: int) -> pd.DataFrame:
    (catalogue / f"{name}.yaml").write_text(ENTRY.format(name=name))
    (data / name).mkdir(parents=True)
    corpus = generate_demo_corpus(n_documents, seed=seed)[["doc_id", "text", "recommended"]]
    corpus.to_csv(data / name / "reviews.csv", index=False)
    return corpus


@pytest.fixture
def workspace(tmp_path):
    catalogue, data, home = tmp_path / "catalogue", tmp_path / "data", tmp_path / "home"
    catalogue.mkdir()
    (tmp_path / "fast.yaml").write_text(FAST_TRAINING)
    return catalogue, data, home


def llm_env(server, data: Path) -> dict[str, str]:
    return {
        "INSTRUCTLF_DATA_DIR": str(data),
        "INSTRUCTLF_PROPOSER": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": KEY,
        "INSTRUCTLF_LLM_MODEL": MODEL,
        "INSTRUCTLF_LLM_CONCURRENCY": str(CONCURRENCY),
        "INSTRUCTLF_LLM_MAX_RETRIES": "1",
        "INSTRUCTLF_LLM_BACKOFF_S": "0.05",
        "INSTRUCTLF_LLM_TIMEOUT_S": "5",
    }


def start_cli(args, home: Path, catalogue: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The CLI in its own process group, so kill -9 takes everything it started with it."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("INSTRUCTLF_CATALOGUE", "DAGSTER_HOME")}
    full_env.update(env, DAGSTER_HOME=str(home), INSTRUCTLF_CATALOGUE=str(catalogue))
    out = log.open("w")
    command = [*CLI, *args, "--config", str(catalogue.parent / "fast.yaml")]
    return subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out, stderr=out, start_new_session=True)


def wait_for(condition, process: subprocess.Popen, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"the run ended (rc {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill_9(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL


def stored(home: Path, asset: str, partition: str) -> Path:
    return home / "instructlf" / asset / partition


def assert_cache_intact(home: Path) -> None:
    for database in (home / "instructlf" / "llm_cache").glob("*.sqlite*"):
        if database.suffix == ".sqlite":
            with sqlite3.connect(database) as connection:
                assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def assert_no_secret_anywhere(home: Path, *outputs: str) -> None:
    for path in home.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), f"the API key leaked into {path}"
    for output in outputs:
        assert KEY not in output


def test_server_death_and_kill_9_mid_run_lose_nothing_and_repeat_no_answered_call(workspace, tmp_path):
    catalogue, data, home = workspace
    corpus = write_dataset(catalogue, data, "rel", 60, seed=11)

    # 1. The LLM server dies mid-run: bounded retries, then one clear error; the documents stay materialized.
    with serve(SentenceListServer()) as first:
        first.latency_s = 0.2
        env = llm_env(first, data)
        dying = start_cli(["run", "rel"], home, catalogue, env, tmp_path / "run1.log")
        wait_for(lambda: first.answered.total() >= 8, dying, "8 answered calls")
    dying.wait(timeout=300)
    output = (tmp_path / "run1.log").read_text()
    assert dying.returncode == 1, output[-3000:]
    [error] = [line for line in output.splitlines() if line.startswith("error:")]
    assert "property_proposals" in error and "got no usable property" in error and "gave up after" in error, error
    documents = read_artifact(stored(home, "raw_documents", "rel"))
    assert sorted(documents["doc_id"]) == sorted(corpus["doc_id"].astype(str))
    answered_by_first = Counter(document for document, _ in first.answered.elements())

    # 2. A new server; kill -9 while proposals are being requested.
    with serve(SentenceListServer()) as second:
        second.latency_s = 0.2
        env = llm_env(second, data)
        killed = start_cli(["run", "rel"], home, catalogue, env, tmp_path / "run2.log")
        wait_for(lambda: second.answered.total() >= 4, killed, "4 answered calls")
        kill_9(killed)
        time.sleep(0.5)  # calls in flight at the kill finish on the server's side
        assert not stored(home, "property_proposals", "rel").exists()

        # 3. kill -9 during encoder training (the vocabulary, written just before it, marks the moment).
        training = start_cli(["run", "rel"], home, catalogue, env, tmp_path / "run3.log")
        wait_for(lambda: (stored(home, "property_vocabulary", "rel") / "artifact.json").exists(), training, "vocab")
        time.sleep(2.0)
        assert not stored(home, "compatibility_encoder", "rel").exists(), "the kill must land during training"
        kill_9(training)
        proposals = read_artifact(stored(home, "property_proposals", "rel"))
        vocabulary = read_artifact(stored(home, "property_vocabulary", "rel"))

        # 4. The next run finishes what is missing, from the encoder down, and repeats no answered call.
        final = run_cli(["run", "rel", "--config", str(tmp_path / "fast.yaml")], home, catalogue, extra_env=env)
        assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-3000:]
        answered_by_second = Counter(document for document, _ in second.answered.elements())

    stages = "compatibility_encoder, property_scores, latent_factors, baseline_representations, downstream_evaluation"
    assert f"materializing {stages}" in final.stdout
    assert "marked run" in final.stdout and "its process died" in final.stdout
    pd.testing.assert_frame_equal(read_artifact(stored(home, "property_proposals", "rel")), proposals)
    pd.testing.assert_frame_equal(read_artifact(stored(home, "property_vocabulary", "rel")), vocabulary)

    assert set(answered_by_first.values()) == {1}
    assert not set(answered_by_first) & set(answered_by_second), "a call answered before the server died was repeated"
    # Only calls in flight at the kill (answered by the server, never received) may be asked again.
    repeated = [document for document, count in answered_by_second.items() if count > 1]
    assert len(repeated) <= CONCURRENCY and set(answered_by_second.values()) <= {1, 2}
    proposed_texts = set(corpus.set_index(corpus["doc_id"].astype(str)).loc[proposals["doc_id"].unique(), "text"])
    assert proposed_texts <= set(answered_by_first) | set(answered_by_second)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        statuses = Counter(run.status for run in instance.get_runs())
    assert statuses[dg.DagsterRunStatus.STARTED] == 0, "killed runs must not look like they are still running"
    assert statuses[dg.DagsterRunStatus.FAILURE] >= 3
    assert_cache_intact(home)
    assert_no_secret_anywhere(home, output, final.stdout, final.stderr)


def test_two_partitions_run_at_once_without_corrupting_each_other(workspace, tmp_path):
    catalogue, data, home = workspace
    corpora = {name: write_dataset(catalogue, data, name, 50, seed) for name, seed in (("rel_a", 21), ("rel_b", 22))}
    with serve(SentenceListServer()) as server:
        server.latency_s = 0.05
        env = llm_env(server, data)
        runs = {name: start_cli(["run", name], home, catalogue, env, tmp_path / f"{name}.log") for name in corpora}
        for process in runs.values():
            process.wait(timeout=600)
    for name, process in runs.items():
        assert process.returncode == 0, (tmp_path / f"{name}.log").read_text()[-3000:]

    assert set(server.answered.values()) == {1}, "the shared cache made a run repeat (or lose) a call"
    for name, corpus in corpora.items():
        documents = read_artifact(stored(home, "raw_documents", name))
        assert sorted(documents["doc_id"]) == sorted(corpus["doc_id"].astype(str))
        proposals = read_artifact(stored(home, "property_proposals", name))
        texts = corpus.set_index(corpus["doc_id"].astype(str))["text"]
        assert set(proposals["doc_id"]) <= set(texts.index)
        report = run_cli(["report", name, "--json"], home, catalogue, extra_env=env)
        assert report.returncode == 0 and '"factors"' in report.stdout, report.stderr[-2000:]
    assert_cache_intact(home)
