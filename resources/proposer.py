"""Property proposal: one interface, chosen by configuration, so assets never branch on the back end."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import dagster as dg
import pandas as pd
from pydantic import Field

from instructlf_assets.core.catalogue import DatasetSpec
from instructlf_assets.core.offline_proposer import ExtractiveOptions, propose_extractive

from .encoder import EncoderResource

PROPOSAL_COLUMNS = ["doc_id", "rank", "property", "relevance", "proposer", "model"]


@dataclass
class ProposalRun:
    """`table` is the long proposals table; `failed` lists documents with no usable property and why."""

    table: pd.DataFrame
    failed: pd.DataFrame
    stats: dict[str, object] = field(default_factory=dict)


class ProposerResource(dg.ConfigurableResource):
    """Proposes goal-related properties for each document.

    `offline` is extractive: it picks the document's own clauses nearest the goal (see core.offline_proposer).
    """

    backend: Literal["offline"] = Field("offline", description="Proposal back end.")
    goal_weight: float = Field(0.8, ge=0.0, le=1.0, description="Offline: weight of goal vs document similarity.")
    diversity: float = Field(0.15, ge=0.0, le=1.0, description="Offline: MMR redundancy penalty.")
    min_relevance: float = Field(0.1, description="Offline: drop clauses less relevant than this.")

    def describe(self) -> str:
        return "offline extractive (document clauses ranked by all-MiniLM-L6-v2 similarity; no LLM)"

    def propose(self, documents: pd.DataFrame, spec: DatasetSpec, encoder: EncoderResource) -> ProposalRun:
        started = time.perf_counter()
        options = ExtractiveOptions(
            top_k=spec.prompt.properties_per_document,
            goal_weight=self.goal_weight,
            diversity=self.diversity,
            min_relevance=self.min_relevance,
        )
        model = encoder.load_base()
        proposals = propose_extractive(documents["text"].tolist(), spec.goal, encoder.embedder(model), options)
        rows = [
            {
                "doc_id": doc_id,
                "rank": rank,
                "property": phrase.text,
                "relevance": phrase.relevance,
                "proposer": "offline",
                "model": "all-MiniLM-L6-v2",
            }
            for doc_id, phrases in zip(documents["doc_id"], proposals, strict=True)
            for rank, phrase in enumerate(phrases, start=1)
        ]
        failed = [
            {"doc_id": doc_id, "reason": "no clause of the document reached the relevance threshold"}
            for doc_id, phrases in zip(documents["doc_id"], proposals, strict=True)
            if not phrases
        ]
        return ProposalRun(
            table=pd.DataFrame(rows, columns=PROPOSAL_COLUMNS),
            failed=pd.DataFrame(failed, columns=["doc_id", "reason"]),
            stats={"backend": "offline", "llm_calls": 0, "seconds": time.perf_counter() - started},
        )
