"""`INSTRUCTLF_PROPOSER=openai instructlf run` end to end against a local OpenAI-compatible server."""

import re
import shutil

import pandas as pd
import pytest

from instructlf_assets.core.demo_corpus import generate_demo_corpus
from tests.chat_server import KEY, FakeChatServer, serve
from tests.conftest import TEST_CATALOGUE, TEST_DATA
from tests.test_cli import run_cli


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


def test_one_call_per_document_and_only_new_documents_after_an_append(llm_dataset, tmp_path):
    catalogue, data = llm_dataset
    home = tmp_path / "home"
    with serve(SentenceListServer()) as server:
        env = {
            "INSTRUCTLF_PROPOSER": "openai",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": KEY,
            "INSTRUCTLF_DATA_DIR": str(data),
        }
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

    outputs = first.stdout + first.stderr + again.stdout + appended.stdout + appended.stderr
    assert KEY not in outputs
    leaking = [p for p in home.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert leaking == []
