"""The document x property score matrix: encode each side once, then one matrix product per document chunk.

Peak memory is one chunk of document embeddings and scores plus the property embeddings plus the output. For
matrices larger than RAM, :func:`score_matrix_to_npy` streams the chunks into an ``.npy`` file instead, so the
output never has to be resident at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .embedding import Embedder


def score_chunks(
    embed: Embedder, documents: Sequence[str], properties: Sequence[str], chunk_size: int = 2048
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 block of cos(Φ(document), Φ(property))) for each run of ``chunk_size`` documents.

    Properties are encoded once; documents a chunk at a time, which is what bounds memory and what lets the
    encoder batch (one call per chunk, not per document).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    property_vectors = embed(list(properties))
    for start in range(0, len(documents), chunk_size):
        chunk = embed(list(documents[start : start + chunk_size]))
        # Unit vectors, so the product is the cosine; the clip only removes rounding past +-1.
        yield start, np.clip(chunk @ property_vectors.T, -1.0, 1.0, dtype=np.float32)


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
    for start, block in score_chunks(embed, documents, properties, chunk_size):
        out[start : start + len(block)] = block
    return out


def score_matrix_to_npy(
    embed: Embedder,
    documents: Sequence[str],
    properties: Sequence[str],
    path: str | Path,
    chunk_size: int = 2048,
    dtype: np.dtype | type = np.float32,
) -> np.memmap:
    """The score matrix streamed into the ``.npy`` file at ``path``; returned as a read-only memory map.

    Chunks are appended with plain file writes rather than through a writable memory map: dirty pages of a
    shared mapping count towards the process's resident memory until the kernel writes them back, so filling a
    100k x 5k float32 memmap showed the whole 2 GB as RSS, whereas written-out pages sit in the page cache,
    which the kernel reclaims freely. Peak memory is then one chunk, whatever the number of documents.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a float type, got {dtype}")
    shape = (len(documents), len(properties))
    header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset = header.offset  # the header is written; the data area is a sparse, not yet resident, file
    del header
    row_bytes = shape[1] * dtype.itemsize
    with open(path, "r+b") as handle:
        for start, block in score_chunks(embed, documents, properties, chunk_size):
            handle.seek(offset + start * row_bytes)
            handle.write(np.ascontiguousarray(block, dtype=dtype).data)
    return np.load(path, mmap_mode="r")
