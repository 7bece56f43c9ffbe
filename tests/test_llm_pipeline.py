"""`INSTRUCTLF_PROPOSER=openai instructlf run` end to end against a local OpenAI-compatible server."""

import json
import re
import shutil

import pandas as pd
import pytest

from instructlf_assets.core.demo_corpus import generate_demo_corpus
from tests.chat_server import KEY, FakeChatServer, serve
from tests.conftest import STAGES, TEST_CATALOGUE, TEST_DATA
from tests.test_cli import run_cli
from tests.test_lineage import materialization_counts


class SentenceListServer(FakeChatServer):
    """Answers like a cooperative model: one analysis sentence, then the document's sentences as a list."""

    def reply_text(self, document: str, step: int) -> str:
        sentences = [s.strip() for s in re.split(r"[.!?]", document) if s.strip()]
        listed = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences[:4], start=1))
        return f"The review weighs several aspects.\n{listed}"


@pytest.fixture
def llm_dataset(tmp_path):
    catalogue, data = tmp_path / "catalogue", tmp_path / "data"
    catalogue.mkdir()
    shutil.copy(TEST_CATALOGUE / "tiny.yaml", catalogue / "tiny.yaml")
    shutil.copytree(TEST_DATA / "tiny", data / "tiny")
    return catalogue, data


def proposed_ids(home) -> set[str]:
    table = pd.read_parquet(home / "instructlf" / "property_proposals" / "tiny" / "table.parquet")
    return set(table["doc_id"])


def openai_environment(server: FakeChatServer, data, **extra: str) -> dict[str, str]:
    """The variables that point `instructlf` at the loopback server and the test's data directory."""
    return {
        "INSTRUCTLF_PROPOSER": "openai",
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": KEY,
        "INSTRUCTLF_DATA_DIR": str(data),
        **extra,
    }


def test_one_call_per_document_and_only_new_documents_after_an_append(llm_dataset, tmp_path):
    catalogue, data = llm_dataset
    home = tmp_path / "home"
    with serve(SentenceListServer()) as server:
        env = openai_environment(server, data)
        first = run_cli(["run", "tiny"], home, catalogue, extra_env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        first_ids = proposed_ids(home)
        assert len(server.calls) == len(first_ids) and set(server.calls.values()) == {1}

        again = run_cli(["run", "tiny"], home, catalogue, extra_env=env)
        assert again.returncode == 0 and "up to date" in again.stdout, again.stderr[-3000:]
        assert sum(server.calls.values()) == len(first_ids)

        corpus = pd.read_csv(data / "tiny" / "reviews.csv")
        extra = generate_demo_corpus(30, seed=99)[["doc_id", "text", "recommended"]]
        extra["doc_id"] = extra["doc_id"].str.replace("review", "added")
        pd.concat([corpus, extra]).to_csv(data / "tiny" / "reviews.csv", index=False)
        appended = run_cli(["run", "tiny"], home, catalogue, extra_env=env)
        assert appended.returncode == 0, appended.stderr[-3000:]
        assert "materializing raw_documents" in appended.stdout
        new_ids = proposed_ids(home) - first_ids
        assert new_ids and all(doc_id.startswith("added") for doc_id in new_ids)
        # proposals were recomputed for every document, but old ones came from the cache
        assert proposed_ids(home) >= first_ids
        assert sum(server.calls.values()) == len(first_ids) + len(new_ids)
        assert all(count == 1 for count in server.calls.values())

        # Another model proposes other properties: proposals and below re-run, the documents do not.
        before = materialization_counts(home)
        switched = run_cli(["run", "tiny", "--json"], home, catalogue, extra_env={**env, "INSTRUCTLF_LLM_MODEL": "m2"})
        assert switched.returncode == 0, switched.stderr[-3000:]
        after = materialization_counts(home)
        assert [stage for stage in STAGES if after[stage] > before[stage]] == STAGES[1:]
        report = json.loads(switched.stdout[switched.stdout.index("\n{") :])
        assert report["provenance"]["proposer"]["model"] == "m2"
        assert {r["model"] for r in server.requests[-3:]} == {"m2"}

    outputs = first.stdout + first.stderr + again.stdout + appended.stdout + appended.stderr
    assert KEY not in outputs
    leaking = [p for p in home.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaking == []


def test_plan_says_what_would_be_sent_and_the_call_cap_stops_a_run_before_any_request(llm_dataset, tmp_path):
    catalogue, data = llm_dataset
    home = tmp_path / "home"
    with serve(SentenceListServer()) as server:
        env = openai_environment(server, data, INSTRUCTLF_LLM_PRICE_PER_MTOK="2.5", INSTRUCTLF_LLM_MAX_CALLS="10")
        plan = run_cli(["run", "tiny", "--dry-run"], home, catalogue, extra_env=env)
        assert plan.returncode == 0, plan.stderr[-3000:]
        match = re.search(
            r"(\d+) documents with openai model \S+: 0 answered from the cache, (\d+) to send", plan.stdout
        )
        assert match and match.group(1) == match.group(2) and int(match.group(2)) > 10, plan.stdout
        assert "estimated cost" in plan.stdout and "above INSTRUCTLF_LLM_MAX_CALLS (10)" in plan.stdout
        assert "property_proposals" in plan.stdout and "never materialized" in plan.stdout
        assert sum(server.calls.values()) == 0, "planning sent a request"

        capped = run_cli(["run", "tiny"], home, catalogue, extra_env=env)
        assert capped.returncode == 1
        [line] = capped.stderr.strip().splitlines()
        assert "INSTRUCTLF_LLM_MAX_CALLS" in line or "max_calls" in line, line
        assert sum(server.calls.values()) == 0, "a request was sent above the cap"
