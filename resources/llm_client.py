"""Property proposal with a chat model: the back-end protocol, the OpenAI-compatible back end, and the run.

The run (`propose_with_llm`) owns everything that makes a thousand-document job survivable: a bounded thread
pool, retries with exponential back-off and full jitter (honouring `Retry-After`), a persistent cache consulted
before and written right after every call (a killed run resumes where it stopped), and per-document failure
records instead of a crash. Back ends only translate one call; the OpenAI client's own retries are switched off
so that every retry is ours, and counted.

No message produced here contains the API key: back-end errors are rebuilt from the status code and a redacted
server message, and exception chains are cut (`from None`) so a traceback cannot carry the request either.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from instructlf_assets.core.catalogue import PromptSpec
from instructlf_assets.core.errors import ProposerError
from instructlf_assets.core.prompts import Message, first_messages, followup_messages
from instructlf_assets.core.proposal_parsing import estimate_tokens, parse_properties

from .llm_cache import ReplyCache, cache_key

logger = logging.getLogger(__name__)

# Same columns as resources.proposer.PROPOSAL_COLUMNS (not imported: proposer imports this module).
LLM_PROPOSAL_COLUMNS = ["doc_id", "rank", "property", "relevance", "proposer", "model"]
FAILED_COLUMNS = ["doc_id", "reason"]
MAX_RETRY_AFTER_S = 120.0
ANALYSIS_CHARS_GUESS = 300
MESSAGE_OVERHEAD_TOKENS = 4
_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_*\-]{3,}|Bearer\s+\S+)")


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ChatBackend(Protocol):
    """One chat call. Raise `BackendError` (or a subclass) so the run knows whether to retry."""

    def complete(self, messages: list[Message], timeout: float) -> Completion: ...


class BackendError(Exception):
    """A failed call whose message is safe to log and store: it never contains credentials."""

    retryable = False


class TransientBackendError(BackendError):
    """Rate limit, server error, timeout, dropped connection or garbled body: worth another try."""

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalBackendError(BackendError):
    """Wrong key, no permission, unknown model: every call would fail the same way, so the run stops."""


class OpenAIChatBackend:
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, LM Studio, ...).

    `temperature=None` or `max_tokens=None` leaves the parameter out of the request, for models that reject it.
    """

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        model: str,
        *,
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
    ) -> None:
        if not api_key:
            raise ProposerError(
                "OpenAI back end: no API key given; set OPENAI_API_KEY (any non-empty string for a local server)"
            )
        import openai

        self.base_url = base_url
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._secret = api_key
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r})"

    def complete(self, messages: list[Message], timeout: float) -> Completion:
        import openai

        options: dict[str, object] = {}
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        try:
            response = self._client.chat.completions.create(
                model=self.model, messages=messages, timeout=timeout, **options
            )
        except openai.APITimeoutError:
            raise TransientBackendError(f"timed out after {timeout:g}s") from None
        except openai.APIConnectionError as exc:
            raise TransientBackendError(f"connection error ({self._safe(exc.message)})") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.OpenAIError as exc:
            raise BackendError(f"OpenAI client error: {type(exc).__name__}: {self._safe(str(exc))}") from None
        except ValueError:
            raise TransientBackendError("malformed response body (not valid JSON)") from None
        return self._completion(response)

    def _completion(self, response: object) -> Completion:
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise TransientBackendError("malformed response body (no choices)")
        message = getattr(choices[0], "message", None)
        text = getattr(message, "content", None)
        if text is not None and not isinstance(text, str):
            raise TransientBackendError("malformed response body (message content is not text)")
        usage = getattr(response, "usage", None)
        return Completion(
            text=text or "",
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )

    def _status_error(self, exc: object) -> BackendError:
        status = int(getattr(exc, "status_code", 0))
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", {}) or {}
        where = f"{self.base_url or 'api.openai.com'} model {self.model!r}"
        if status == 401:
            return FatalBackendError(f"HTTP 401 from {where}: authentication failed; check the API key")
        if status == 403:
            return FatalBackendError(f"HTTP 403 from {where}: the key has no access to this model or endpoint")
        if status == 404:
            return FatalBackendError(f"HTTP 404 from {where}: unknown model or wrong base_url (needs .../v1)")
        if status in (408, 409, 429) or status >= 500:
            return TransientBackendError(f"HTTP {status}", retry_after=retry_after_seconds(headers))
        return BackendError(f"HTTP {status}: {self._safe(getattr(exc, 'message', ''))}")

    def _safe(self, text: str) -> str:
        return redact(text, self._secret)[:300]


def redact(text: str, secret: str | None = None) -> str:
    """Remove the key itself and anything shaped like a key or a bearer token (servers echo partial keys)."""
    if secret:
        text = text.replace(secret, "***")
    return _SECRET_LIKE.sub("***", text)


def retry_after_seconds(headers: object) -> float | None:
    """`retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    get = getattr(headers, "get", None)
    if get is None:
        return None
    milliseconds, value = get("retry-after-ms"), get("retry-after")
    if milliseconds is not None:
        seconds = _number(milliseconds)
        if seconds is not None:
            return seconds / 1000
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class LLMProposalResult:
    """`table` is the long proposals table; `failed` lists documents with no usable property and why."""

    table: pd.DataFrame
    failed: pd.DataFrame
    stats: dict[str, float | int] = field(default_factory=dict)


@dataclass
class _Counters:
    calls_made: int = 0
    cache_hits: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **amounts: int) -> None:
        with self.lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


class _Cancelled(Exception):
    """The run is stopping (interrupted or fatal error): give up this document without recording it."""


@dataclass
class _Job:
    """Everything a worker needs for one document; shared read-only, except the counters and stop flag."""

    goal: str
    spec: PromptSpec
    backend: ChatBackend
    cache: ReplyCache
    model_name: str
    timeout_s: float
    max_retries: int
    backoff_base_s: float
    backoff_cap_s: float
    two_step: bool
    counters: _Counters = field(default_factory=_Counters)
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class _Outcome:
    doc_id: object
    properties: list[str]
    reason: str | None


def propose_with_llm(
    doc_ids: Sequence[object],
    texts: Sequence[str],
    goal: str,
    prompt_spec: PromptSpec,
    backend: ChatBackend,
    cache: ReplyCache,
    *,
    model_name: str,
    concurrency: int = 8,
    timeout_s: float = 60.0,
    max_retries: int = 5,
    two_step: bool = False,
    log: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    proposer: str = "openai",
    backoff_base_s: float = 1.0,
    backoff_cap_s: float = 30.0,
) -> LLMProposalResult:
    """Propose properties for every document; documents that fail are listed with a reason, not raised.

    Raises ProposerError on bad input or a fatal back-end error (wrong key, unknown model). `on_progress(done,
    total)` runs in the calling thread after each document; if it raises, pending documents are cancelled, calls
    in flight finish and are cached, and the exception propagates (that is how an interrupted run is tested).
    """
    _check_inputs(doc_ids, texts, concurrency)
    log = log or logger.info
    job = _Job(
        goal, prompt_spec, backend, cache, model_name, timeout_s, max_retries, backoff_base_s, backoff_cap_s, two_step
    )
    started = time.perf_counter()
    log(_estimate(job, texts))
    outcomes = _run_pool(job, doc_ids, texts, concurrency, on_progress)
    result = _result(job, doc_ids, outcomes, proposer, time.perf_counter() - started)
    log(_summary(result.stats))
    return result


def _check_inputs(doc_ids: Sequence[object], texts: Sequence[str], concurrency: int) -> None:
    if len(doc_ids) != len(texts):
        raise ProposerError(f"LLM proposer: {len(doc_ids)} document ids but {len(texts)} texts; pass one id per text")
    if len(set(doc_ids)) != len(doc_ids):
        raise ProposerError("LLM proposer: document ids are not unique; de-duplicate the corpus' id column")
    if concurrency < 1:
        raise ProposerError(f"LLM proposer: concurrency must be at least 1, got {concurrency}")


def _estimate(job: _Job, texts: Sequence[str]) -> str:
    """What the run will send, from the cache alone (uncounted peeks); the second step's prompt is guessed."""
    to_send = calls = tokens = 0
    for text in texts:
        messages = first_messages(job.goal, text, job.spec, two_step=job.two_step)
        reply = job.cache.peek(cache_key(job.model_name, messages))
        pending = [] if reply is not None else [messages]
        if job.two_step:
            followup = followup_messages(messages, reply or "x" * ANALYSIS_CHARS_GUESS, job.spec)
            if reply is None or job.cache.peek(cache_key(job.model_name, followup)) is None:
                pending.append(followup)
        to_send += bool(pending)
        calls += len(pending)
        tokens += sum(_message_tokens(m) for m in pending)
    return (
        f"LLM proposal with {job.model_name}: {len(texts)} documents, {len(texts) - to_send} already cached, "
        f"{to_send} to send ({calls} calls, ~{tokens} prompt tokens; estimated at 4 characters per token)"
    )


def _message_tokens(messages: list[Message]) -> int:
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def _run_pool(
    job: _Job,
    doc_ids: Sequence[object],
    texts: Sequence[str],
    concurrency: int,
    on_progress: Callable[[int, int], None] | None,
) -> dict[object, _Outcome]:
    outcomes: dict[object, _Outcome] = {}
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm-propose")
    try:
        futures = [pool.submit(_propose_one, job, doc_id, text) for doc_id, text in zip(doc_ids, texts, strict=True)]
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            outcomes[outcome.doc_id] = outcome
            if on_progress is not None:
                on_progress(done, len(futures))
    except FatalBackendError as exc:
        raise ProposerError(f"LLM proposer stopped: {exc}") from None
    finally:
        job.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def _propose_one(job: _Job, doc_id: object, text: str) -> _Outcome:
    try:
        messages = first_messages(job.goal, text, job.spec, two_step=job.two_step)
        reply = _answer(job, messages)
        if job.two_step:
            reply = _answer(job, followup_messages(messages, reply, job.spec))
    except (FatalBackendError, _Cancelled):
        raise
    except BackendError as exc:
        return _Outcome(doc_id, [], str(exc))
    parsed = parse_properties(reply, job.goal, max_items=job.spec.properties_per_document, document=text)
    if parsed.failure is not None:
        return _Outcome(doc_id, [], f"unusable reply: {parsed.failure}")
    return _Outcome(doc_id, parsed.properties, None)


def _answer(job: _Job, messages: list[Message]) -> str:
    """The cached reply, or a fresh one that is cached before it is used."""
    key = cache_key(job.model_name, messages)
    cached = job.cache.get(key)
    if cached is not None:
        job.counters.add(cache_hits=1)
        return cached
    completion = _call_with_retries(job, messages)
    usage = {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
    job.cache.put(key, completion.text, usage)
    return completion.text


def _call_with_retries(job: _Job, messages: list[Message]) -> Completion:
    for attempt in range(job.max_retries + 1):
        if job.stop.is_set():
            raise _Cancelled
        job.counters.add(calls_made=1)
        try:
            completion = _complete(job.backend, messages, job.timeout_s)
        except BackendError as exc:
            if not exc.retryable:
                raise
            if attempt == job.max_retries:
                raise TransientBackendError(f"{exc} (gave up after {attempt + 1} attempts)") from None
            job.counters.add(retries=1)
            if job.stop.wait(_delay(job, attempt, getattr(exc, "retry_after", None))):
                raise _Cancelled from None
            continue
        job.counters.add(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
        return completion
    raise AssertionError("unreachable: the last attempt returns or raises")


def _complete(backend: ChatBackend, messages: list[Message], timeout_s: float) -> Completion:
    """A third-party back end's own exception (a bug, an unwrapped client error) fails one document, not the run."""
    try:
        return backend.complete(messages, timeout_s)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(redact(f"back end raised {type(exc).__name__}: {exc}")[:300]) from None


def _delay(job: _Job, attempt: int, retry_after: float | None) -> float:
    """The server's Retry-After when it gives a sane one, else full jitter: uniform(0, min(cap, base * 2^n))."""
    if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER_S:
        return retry_after
    return random.uniform(0, min(job.backoff_cap_s, job.backoff_base_s * 2**attempt))


def _result(
    job: _Job, doc_ids: Sequence[object], outcomes: dict[object, _Outcome], proposer: str, seconds: float
) -> LLMProposalResult:
    rows = [
        {
            "doc_id": doc_id,
            "rank": rank,
            "property": prop,
            "relevance": float("nan"),
            "proposer": proposer,
            "model": job.model_name,
        }
        for doc_id in doc_ids
        for rank, prop in enumerate(outcomes[doc_id].properties, start=1)
    ]
    failed = [{"doc_id": d, "reason": outcomes[d].reason} for d in doc_ids if outcomes[d].reason is not None]
    counters = job.counters
    stats: dict[str, float | int] = {
        "documents": len(doc_ids),
        "calls_made": counters.calls_made,
        "cache_hits": counters.cache_hits,
        "failures": len(failed),
        "retries": counters.retries,
        "prompt_tokens": counters.prompt_tokens,
        "completion_tokens": counters.completion_tokens,
        "seconds": seconds,
    }
    return LLMProposalResult(
        table=pd.DataFrame(rows, columns=LLM_PROPOSAL_COLUMNS).astype({"relevance": float}),
        failed=pd.DataFrame(failed, columns=FAILED_COLUMNS),
        stats=stats,
    )


def _summary(stats: dict[str, float | int]) -> str:
    return (
        f"LLM proposal done in {stats['seconds']:.1f}s: {stats['calls_made']} calls ({stats['retries']} retries), "
        f"{stats['cache_hits']} cache hits, {stats['failures']} failed documents, "
        f"{stats['prompt_tokens']} prompt + {stats['completion_tokens']} completion tokens"
    )
