"""A persistent cache of chat-model replies, so a rerun or a resumed run never pays twice for one answer.

SQLite in WAL mode: readers never block the writer, several processes (e.g. Dagster runs of two partitions)
can share one file, and a writer waits up to `BUSY_TIMEOUT_MS` for a lock instead of failing. Each thread gets
its own connection (sqlite3 connections must not be shared across threads mid-statement). Each reply is
committed as soon as it is written, so a run killed at any point keeps every reply received before.

The key is the sha256 of the model name, the full messages JSON and `CACHE_FORMAT_VERSION`: any change to the
prompt or model is a different key. What is stored: the key, the reply text, token usage and a timestamp; never
the request headers, so never an API key.

On an object store (`s3://...`, any fsspec URL) SQLite cannot work, so `ObjectStoreResponseCache` stores one
object per reply, `<location>/replies/<key[:2]>/<key>.json`, written in one PUT. Concurrent writers never
read-modify-write a shared object: two workers answering the same prompt write the same key with equally valid
replies and the last PUT wins, which is harmless; different prompts touch different objects.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CACHE_FORMAT_VERSION = 1
CACHE_FILENAME = "llm_replies.sqlite"
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    reply TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
)
"""


def _use_wal(connection: sqlite3.Connection) -> None:
    """Switch the file to WAL, retrying: SQLite answers a journal-mode change that races another process's with
    "database is locked" at once, without waiting on the busy timeout (seen in CI with four writers starting)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def cache_key(model: str, messages: Sequence[Mapping[str, str]]) -> str:
    """Stable across processes and Python versions: canonical JSON (sorted keys, no whitespace) hashed."""
    payload = {"version": CACHE_FORMAT_VERSION, "model": model, "messages": list(messages)}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def open_response_cache(location: str | Path) -> ResponseCache | ObjectStoreResponseCache:
    """The cache for a storage location: SQLite in a local directory, one object per reply on an object store."""
    from .storage import is_object_store, local_path

    if is_object_store(location):
        return ObjectStoreResponseCache(str(location))
    return ResponseCache(local_path(location))


class ResponseCache:
    """Thread-safe and multi-process-safe reply cache in `directory`/llm_replies.sqlite."""

    def __init__(self, directory: Path | str) -> None:
        self.path = Path(directory) / CACHE_FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._counts = {"hits": 0, "misses": 0, "writes": 0}
        self._connection().execute(_SCHEMA)

    def get(self, key: str) -> str | None:
        """The cached reply, counted as a hit or a miss in `stats()`."""
        reply = self.peek(key)
        self._count("hits" if reply is not None else "misses")
        return reply

    def peek(self, key: str) -> str | None:
        """Like `get` but not counted: for planning a run (what is already answered) without skewing stats."""
        row = self._connection().execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, reply: str, usage: Mapping[str, int] | None = None) -> None:
        """Store and commit at once: a run killed right after still finds this reply on resume."""
        usage = usage or {}
        self._connection().execute(
            "INSERT OR REPLACE INTO replies (key, reply, prompt_tokens, completion_tokens, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (key, reply, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), time.time()),
        )
        self._count("writes")

    def stats(self) -> dict[str, object]:
        """Entries and stored token usage for the whole file; hits, misses and writes for this instance."""
        query = "SELECT COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) FROM replies"
        entries, prompt, completion = self._connection().execute(query).fetchone()
        with self._lock:
            counts = dict(self._counts)
        return {
            "path": str(self.path),
            "entries": entries,
            "stored_prompt_tokens": prompt,
            "stored_completion_tokens": completion,
            **counts,
        }

    def close(self) -> None:
        """Close every thread's connection (a checkpoint folds the WAL back into the main file)."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _use_wal(connection)
            connection.execute("PRAGMA synchronous = NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


class ObjectStoreResponseCache:
    """The same interface as `ResponseCache`, one object per reply under an fsspec URL (safe for many writers)."""

    def __init__(self, location: str) -> None:
        from .storage import filesystem

        self.path = location.rstrip("/")
        self._fs, self._root = filesystem(self.path)
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "writes": 0}

    def _object(self, key: str) -> str:
        return f"{self._root}/replies/{key[:2]}/{key}.json"

    def get(self, key: str) -> str | None:
        reply = self.peek(key)
        self._count("hits" if reply is not None else "misses")
        return reply

    def peek(self, key: str) -> str | None:
        try:
            return json.loads(self._fs.cat_file(self._object(key)))["reply"]
        except FileNotFoundError:
            return None

    def put(self, key: str, reply: str, usage: Mapping[str, int] | None = None) -> None:
        """One PUT per reply, at once: a run killed right after still finds it on resume."""
        usage = usage or {}
        entry = {
            "reply": reply,
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "created_at": time.time(),
        }
        self._fs.pipe_file(self._object(key), json.dumps(entry, ensure_ascii=False).encode("utf-8"))
        self._count("writes")

    def stats(self) -> dict[str, object]:
        """Reads every entry (one GET each): for reports, not for the hot path."""
        self._fs.invalidate_cache(f"{self._root}/replies")
        try:
            objects = [p for p in self._fs.find(f"{self._root}/replies") if p.endswith(".json")]
        except FileNotFoundError:
            objects = []
        entries = [json.loads(self._fs.cat_file(p)) for p in objects]
        with self._lock:
            counts = dict(self._counts)
        return {
            "path": self.path,
            "entries": len(entries),
            "stored_prompt_tokens": sum(e["prompt_tokens"] for e in entries),
            "stored_completion_tokens": sum(e["completion_tokens"] for e in entries),
            **counts,
        }

    def close(self) -> None:
        """Nothing to close: every reply is already its own committed object."""

    def __enter__(self) -> ObjectStoreResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


ReplyCache = ResponseCache | ObjectStoreResponseCache
