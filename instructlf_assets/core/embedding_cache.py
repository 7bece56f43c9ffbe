"""Sentence embeddings kept on disk by model and text hash, so a text is encoded once per model, across stages.

Without it one run encodes every document with the base model three times (the offline proposer, the held-out
recall and the embeddings baseline) and again on every re-run; at 60k ALFWorld states each pass is half an hour on
a 2-core CPU. The key is (model identity, max_seq_length, sha256 of the text): the same text under another model or
truncation is another entry, and an edited document is a new text, so nothing stale can be served.

Layout: one directory per model key, holding immutable `part-*.npz` files (hashes + float32 vectors). A writer
only ever adds a part, written to a temporary name and renamed, so concurrent step processes never see half a
file and never need a lock; two processes that both miss a text both store it, which costs a duplicate row, not
a wrong answer. Deleting the directory is always safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .embedding import Embedder

_DIGEST_BYTES = 16


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:_DIGEST_BYTES]


def model_key_directory(root: Path, model_key: str) -> Path:
    """A short directory name for a model key (keys can be paths or package versions)."""
    return root / hashlib.sha256(model_key.encode("utf-8")).hexdigest()[:20]


class EmbeddingCache:
    """The stored vectors of one model key; `embedder` wraps an encoder so only unseen texts reach it."""

    def __init__(self, root: Path | str, model_key: str) -> None:
        self.directory = model_key_directory(Path(root), model_key)
        self.model_key = model_key
        self._rows: dict[bytes, tuple[int, int]] = {}
        self._parts: list[np.ndarray] = []
        self._seen_files: set[str] = set()

    def embedder(self, embed: Embedder) -> Embedder:
        def cached(texts: Sequence[str]) -> np.ndarray:
            return self.lookup_or_encode(texts, embed)

        return cached

    def lookup_or_encode(self, texts: Sequence[str], embed: Embedder) -> np.ndarray:
        """Vectors for `texts` in order: stored ones read back, the rest encoded once (deduplicated) and stored."""
        if len(texts) == 0:
            return embed([])
        self._load_new_parts()
        digests = [text_digest(t) for t in texts]
        missing: dict[bytes, str] = {}
        for digest, text in zip(digests, texts, strict=True):
            if digest not in self._rows and digest not in missing:
                missing[digest] = text
        if missing:
            vectors = np.ascontiguousarray(embed(list(missing.values())), dtype=np.float32)
            self._store(list(missing), vectors)
        first = self._vector(digests[0])
        out = np.empty((len(texts), first.shape[0]), dtype=np.float32)
        for i, digest in enumerate(digests):
            out[i] = self._vector(digest)
        return out

    def _vector(self, digest: bytes) -> np.ndarray:
        part, row = self._rows[digest]
        return self._parts[part][row]

    def _add_part(self, digests: Sequence[bytes], vectors: np.ndarray) -> None:
        index = len(self._parts)
        self._parts.append(vectors)
        for row, digest in enumerate(digests):
            self._rows.setdefault(digest, (index, row))

    def _load_new_parts(self) -> None:
        """Parts other processes wrote since the last call (a partly written file is never named part-*)."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("part-*.npz")):
            if path.name in self._seen_files:
                continue
            self._seen_files.add(path.name)
            try:
                with np.load(path) as stored:
                    hashes, vectors = stored["hashes"], stored["vectors"]
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                continue  # an unreadable part (a disk that filled up): its texts are encoded again, not trusted
            if len(hashes) != len(vectors):
                continue
            self._add_part([h.tobytes() for h in hashes], np.asarray(vectors, dtype=np.float32))

    def _store(self, digests: list[bytes], vectors: np.ndarray) -> None:
        if len(digests) != len(vectors):
            raise ValueError(f"the encoder returned {len(vectors)} vectors for {len(digests)} texts")
        self._add_part(digests, vectors)
        name = f"part-{uuid.uuid4().hex}.npz"
        scratch = self.directory / f".writing-{name}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(scratch, "wb") as handle:
                hashes = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, _DIGEST_BYTES)
                np.savez(handle, hashes=hashes, vectors=vectors)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(scratch, self.directory / name)
        except OSError as error:
            # The vectors are computed and returned either way: a cache that cannot be written costs a later
            # re-encode, never the stage.
            with contextlib.suppress(OSError):
                scratch.unlink(missing_ok=True)
            warnings.warn(f"embedding cache {self.directory}: not stored ({error})", stacklevel=2)
            return
        self._seen_files.add(name)
