"""The document x property score matrix: encode each side once, then one matrix product per document chunk.

Peak memory is one chunk of document embeddings plus the property embeddings plus the output, which may be a
memory-mapped file, so the matrix can be larger than RAM.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .embedding import Embedder


def score_matrix(
    embed: Embedder,
    documents: Sequence[str],
    properties: Sequence[str],
    out: np.ndarray | None = None,
    chunk_size: int = 2048,
) -> np.ndarray:
    """scores[i, j] = cos(Φ(document_i), Φ(property_j)), float32 in [-1, 1], written chunk by chunk into `out`."""
    shape = (len(documents), len(properties))
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    if out.shape != shape:
        raise ValueError(f"output has shape {out.shape}, expected {shape}")
    property_vectors = embed(list(properties))
    for start in range(0, len(documents), chunk_size):
        chunk = embed(list(documents[start : start + chunk_size]))
        np.clip(chunk @ property_vectors.T, -1.0, 1.0, out=out[start : start + len(chunk)])
    return out
