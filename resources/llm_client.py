"""Property proposal with a chat model: the back-end protocol, the OpenAI-compatible back end, and the run.

The run (`propose_with_llm`) owns everything that makes a thousand-document job survivable: a bounded thread
pool, retries with exponential back-off and full jitter (honouring `Retry-After`), a persistent cache consulted
before and written right after every call (a killed run resumes where it stopped), and per-document failure
records for what the server did wrong. Back ends only translate one call; the OpenAI client's own retries are
switched off so that every retry is ours, and counted.

Only the server's failures fail a document: a `BackendError` (HTTP status, timeout, dropped connection, garbled
body) or Python's own `TimeoutError`/`ConnectionError` from a back end that does not wrap them. Anything else a
back end raises (`KeyError`, `TypeError`, ...) is a bug: it stops the run and propagates as it is.

`max_calls` caps the requests a run sends, retries included: a run whose uncached documents need more calls than
the cap stops before its first request, and a run pushed over it by retries stops when it is reached (what was
answered is cached, so the next run resumes).

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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from instructlf_assets.core.catalogue import PromptSpec
from instructlf_assets.core.errors import ProposerError
from instructlf_assets.core.prompts import Message, first_messages, followup_messages
from instructlf_assets.core.proposal_parsing import CHARS_PER_TOKEN, estimate_tokens, parse_properties

from .llm_cache import ReplyCache, cache_key

logger = logging.getLogger(__name__)

# Same columns as resources.proposer.PROPOSAL_COLUMNS (not imported: proposer imports this module).
LLM_PROPOSAL_COLUMNS = ["doc_id", "rank", "property", "relevance", "proposer", "model"]
FAILED_COLUMNS = ["doc_id", "reason"]
MAX_RETRY_AFTER_S = 120.0
ANALYSIS_CHARS_GUESS = 300
MESSAGE_OVERHEAD_TOKENS = 4
COMPLETION_TOKENS_PER_PROPERTY = 10
MAX_CALLS_ENV = "INSTRUCTLF_LLM_MAX_CALLS"
_SECRET_LIKE = re.compile(r"(sk-[A-Za-z0-9_*\-]{3,}|Bearer\s+\S+)")


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    truncated: bool = False  # stopped by max_tokens (finish_reason "length"), not by the model


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
            truncated=getattr(choices[0], "finish_reason", None) == "length",
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
    truncated_replies: int = 0
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
    max_calls: int | None = None
    counters: _Counters = field(default_factory=_Counters)
    stop: threading.Event = field(default_factory=threading.Event)

    def reserve_call(self) -> bool:
        """Count one request about to be sent; False (and nothing counted) when the cap is reached."""
        with self.counters.lock:
            if self.max_calls is not None and self.counters.calls_made >= self.max_calls:
                return False
            self.counters.calls_made += 1
            return True


class _BudgetExhausted(Exception):
    """The run reached `max_calls`: stop sending, keep what was answered."""


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
    max_calls: int | None = None,
) -> LLMProposalResult:
    """Propose properties for every document; documents the server fails are listed with a reason, not raised.

    Raises ProposerError on bad input, a fatal back-end error (wrong key, unknown model), or when the run needs,
    or would reach, more than `max_calls` requests (see the module docstring). A back end's own bug propagates.
    `on_progress(done, total)` runs in the calling thread after each document; if it raises, pending documents
    are cancelled, calls in flight finish and are cached, and the exception propagates (that is how an
    interrupted run is tested).
    """
    _check_inputs(doc_ids, texts, concurrency)
    log = log or logger.info
    job = _Job(
        goal,
        prompt_spec,
        backend,
        cache,
        model_name,
        timeout_s,
        max_retries,
        backoff_base_s,
        backoff_cap_s,
        two_step,
        max_calls,
    )
    started = time.perf_counter()
    pending = pending_calls(goal, texts, prompt_spec, cache, model_name, two_step=two_step)
    log(_estimate_line(model_name, pending))
    if max_calls is not None and pending.calls > max_calls:
        raise ProposerError(
            f"LLM proposer: {pending.n_to_send} uncached documents need {pending.calls} calls, above "
            f"{MAX_CALLS_ENV}={max_calls}; no call was made. Raise {MAX_CALLS_ENV}, or propose fewer documents"
        )
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


@dataclass(frozen=True)
class PendingCalls:
    """What a run would send, from the cache alone: documents with a call to make, the calls, their tokens."""

    n_documents: int
    n_cached: int
    n_to_send: int
    calls: int
    prompt_tokens: int
    completion_tokens: int


def pending_calls(
    goal: str, texts: Sequence[str], spec: PromptSpec, cache: ReplyCache, model_name: str, *, two_step: bool
) -> PendingCalls:
    """The calls a run would make, by the same cache keys, with uncounted peeks; makes no call.

    Tokens are estimates at 4 characters per token; the second step's prompt holds a guessed analysis, and a
    reply is guessed as that analysis plus `COMPLETION_TOKENS_PER_PROPERTY` per requested property.
    """
    to_send = calls = prompt_tokens = completion_tokens = 0
    analysis_tokens = ANALYSIS_CHARS_GUESS // CHARS_PER_TOKEN
    list_tokens = COMPLETION_TOKENS_PER_PROPERTY * spec.properties_per_document
    for text in texts:
        messages = first_messages(goal, text, spec, two_step=two_step)
        reply = cache.peek(cache_key(model_name, messages))
        pending = [] if reply is not None else [messages]
        if two_step:
            followup = followup_messages(messages, reply or "x" * ANALYSIS_CHARS_GUESS, spec)
            if reply is None or cache.peek(cache_key(model_name, followup)) is None:
                pending.append(followup)
        to_send += bool(pending)
        calls += len(pending)
        prompt_tokens += sum(_message_tokens(m) for m in pending)
        for request in pending:
            if not two_step:
                completion_tokens += analysis_tokens + list_tokens
            else:
                completion_tokens += analysis_tokens if request is messages else list_tokens
    return PendingCalls(len(texts), len(texts) - to_send, to_send, calls, prompt_tokens, completion_tokens)


def _estimate_line(model_name: str, pending: PendingCalls) -> str:
    return (
        f"LLM proposal with {model_name}: {pending.n_documents} documents, {pending.n_cached} already cached, "
        f"{pending.n_to_send} to send ({pending.calls} calls, ~{pending.prompt_tokens} prompt tokens; "
        "estimated at 4 characters per token)"
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
    except _BudgetExhausted:
        raise ProposerError(
            f"LLM proposer stopped: {job.max_calls} calls sent, the cap {MAX_CALLS_ENV}={job.max_calls} "
            f"(retries count); {len(outcomes)} of {len(doc_ids)} documents done, their replies cached. "
            f"Raise {MAX_CALLS_ENV} and run again to continue"
        ) from None
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
    except (FatalBackendError, _Cancelled, _BudgetExhausted):
        raise
    except BackendError as exc:
        return _Outcome(doc_id, [], str(exc))
    parsed = parse_properties(reply, job.goal, max_items=job.spec.properties_per_document, document=text)
    if parsed.failure is not None:
        return _Outcome(doc_id, [], f"unusable reply: {parsed.failure}")
    return _Outcome(doc_id, parsed.properties, None)


def _answer(job: _Job, messages: list[Message]) -> str:
    """The cached reply, or a fresh one that is cached before it is used.

    A reply cut off by `max_tokens` is used but not cached: the key does not hold the cap, so a cached stump would
    outlive a raised cap; the next run asks again.
    """
    key = cache_key(job.model_name, messages)
    cached = job.cache.get(key)
    if cached is not None:
        job.counters.add(cache_hits=1)
        return cached
    completion = _call_with_retries(job, messages)
    if completion.truncated:
        job.counters.add(truncated_replies=1)
        return completion.text
    usage = {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
    job.cache.put(key, completion.text, usage)
    return completion.text


def _call_with_retries(job: _Job, messages: list[Message]) -> Completion:
    for attempt in range(job.max_retries + 1):
        if job.stop.is_set():
            raise _Cancelled
        if not job.reserve_call():
            raise _BudgetExhausted
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
    """The back end's answer; Python's own timeout and connection errors count as the server's (retryable).

    Any other exception is the back end's bug and propagates unchanged, stopping the run.
    """
    try:
        return backend.complete(messages, timeout_s)
    except BackendError:
        raise
    except (TimeoutError, ConnectionError) as exc:
        raise TransientBackendError(redact(f"transport error {type(exc).__name__}: {exc}")[:300]) from None


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
        "truncated_replies": counters.truncated_replies,
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


@dataclass
class AnswerRun:
    """One reply per request key, or why there is none; `skipped` says why nothing was sent at all."""

    model: str
    replies: dict[str, str]
    failures: dict[str, str]
    stats: dict[str, int]
    skipped: str | None = None


def answer_each(
    requests: Mapping[str, list[Message]],
    backend: ChatBackend,
    cache: ReplyCache,
    *,
    model_name: str,
    concurrency: int = 8,
    timeout_s: float = 60.0,
    max_retries: int = 5,
    backoff_base_s: float = 1.0,
    backoff_cap_s: float = 30.0,
    max_calls: int | None = None,
) -> AnswerRun:
    """A reply for each request (factor names), with the proposals' cache, retries, back-off and call cap.

    Unlike proposals nothing here stops a run: when the uncached requests need more than `max_calls` calls none
    is sent (`skipped`), and a request the server fails, or that a fatal error or the cap leaves unsent, is in
    `failures` with the reason. A back end's own bug propagates.
    """
    # `_Job` carries a proposal's goal and prompt spec too; these requests are complete, so they are left empty.
    job = _Job(
        goal="",
        spec=PromptSpec(),
        backend=backend,
        cache=cache,
        model_name=model_name,
        timeout_s=timeout_s,
        max_retries=max_retries,
        backoff_base_s=backoff_base_s,
        backoff_cap_s=backoff_cap_s,
        two_step=False,
        max_calls=max_calls,
    )
    uncached = sum(cache.peek(cache_key(model_name, messages)) is None for messages in requests.values())
    if max_calls is not None and uncached > max_calls:
        skipped = f"{uncached} uncached requests need more calls than {MAX_CALLS_ENV}={max_calls}; none was sent"
        failures = {key: f"not sent: {skipped}" for key in requests}
        return AnswerRun(model_name, {}, failures, {"calls_made": 0, "cache_hits": 0, "retries": 0}, skipped)
    replies: dict[str, str] = {}
    failures: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(requests))), thread_name_prefix="llm-answer")
    try:
        futures = {pool.submit(_answer_or_reason, job, messages): key for key, messages in requests.items()}
        for future in as_completed(futures):
            reply, reason = future.result()
            if reason is None:
                replies[futures[future]] = reply
            else:
                failures[futures[future]] = reason
    finally:
        job.stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    counters = job.counters
    stats = {"calls_made": counters.calls_made, "cache_hits": counters.cache_hits, "retries": counters.retries}
    return AnswerRun(model_name, replies, failures, stats)


def _answer_or_reason(job: _Job, messages: list[Message]) -> tuple[str, str | None]:
    """The reply and None, or "" and why there is none; a fatal error or the cap stops the other requests."""
    try:
        return _answer(job, messages), None
    except _Cancelled:
        return "", "not sent: an earlier request stopped the others"
    except _BudgetExhausted:
        job.stop.set()
        return "", f"not sent: the cap {MAX_CALLS_ENV}={job.max_calls} was reached (retries count)"
    except BackendError as exc:
        if isinstance(exc, FatalBackendError):
            job.stop.set()
        return "", str(exc)
