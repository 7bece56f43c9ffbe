"""The score matrix: every document against every property, in memory or streamed to an .npy file."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from instructlf_assets.core.scoring import score_chunks, score_matrix, score_matrix_to_npy

DOCUMENTS = [f"review {i}: the plot is {'gripping' if i % 3 else 'dull'} and the music is {i % 5}" for i in range(23)]
PROPERTIES = ["plot is gripping", "music is loud", "the acting", "dull plot", "nothing in common here"]


class CountingEmbedder:
    """Wraps an embedder and records the size of every call, to see how the texts were batched."""

    def __init__(self, embed) -> None:
        self.embed = embed
        self.calls: list[int] = []

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(len(texts))
        return self.embed(texts)


def naive_scores(embed, documents: Sequence[str], properties: Sequence[str]) -> np.ndarray:
    """One text at a time, one pair at a time: the definition the batched code must reproduce."""
    property_vectors = [embed([text])[0] for text in properties]
    return np.array([[float(embed([doc])[0] @ prop) for prop in property_vectors] for doc in documents])


def test_score_matrix_equals_pairwise_cosines(fake_embed) -> None:
    scores = score_matrix(fake_embed, DOCUMENTS, PROPERTIES, chunk_size=4)
    assert scores.dtype == np.float32
    assert scores.shape == (23, 5)
    np.testing.assert_allclose(scores, naive_scores(fake_embed, DOCUMENTS, PROPERTIES), atol=1e-6)
    assert scores.min() >= -1.0 and scores.max() <= 1.0


def test_documents_are_encoded_one_chunk_per_call(fake_embed) -> None:
    embed = CountingEmbedder(fake_embed)
    blocks = list(score_chunks(embed, DOCUMENTS, PROPERTIES, chunk_size=10))
    assert embed.calls == [5, 10, 10, 3]  # properties once, then each chunk of documents in one batch
    assert [start for start, _ in blocks] == [0, 10, 20]
    assert [len(block) for _, block in blocks] == [10, 10, 3]


def test_streamed_npy_matches_in_memory_matrix(fake_embed, tmp_path) -> None:
    path = tmp_path / "scores.npy"
    streamed = score_matrix_to_npy(fake_embed, DOCUMENTS, PROPERTIES, path, chunk_size=7)
    expected = score_matrix(fake_embed, DOCUMENTS, PROPERTIES)
    assert isinstance(streamed, np.memmap)
    assert not streamed.flags.writeable
    np.testing.assert_array_equal(streamed, expected)
    np.testing.assert_array_equal(np.load(path), expected)  # a plain .npy any reader can open


def test_streamed_npy_can_store_half_precision(fake_embed, tmp_path) -> None:
    half = score_matrix_to_npy(fake_embed, DOCUMENTS, PROPERTIES, tmp_path / "half.npy", dtype=np.float16)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, score_matrix(fake_embed, DOCUMENTS, PROPERTIES), atol=1e-3)
    with pytest.raises(ValueError, match="float type"):
        score_matrix_to_npy(fake_embed, DOCUMENTS, PROPERTIES, tmp_path / "int.npy", dtype=np.int8)


def test_no_documents_gives_an_empty_matrix(fake_embed, tmp_path) -> None:
    assert score_matrix(fake_embed, [], PROPERTIES).shape == (0, 5)
    assert score_matrix_to_npy(fake_embed, [], PROPERTIES, tmp_path / "empty.npy").shape == (0, 5)


def test_bad_chunk_size_and_wrong_output_shape_raise(fake_embed) -> None:
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        score_matrix(fake_embed, DOCUMENTS, PROPERTIES, chunk_size=0)
    with pytest.raises(ValueError, match="expected \\(23, 5\\)"):
        score_matrix(fake_embed, DOCUMENTS, PROPERTIES, out=np.empty((22, 5), dtype=np.float32))
