"""The embedding cache: each text reaches the encoder once per model key, across calls and processes."""

import numpy as np
import pytest

from instructlf_assets.core.embedding_cache import EmbeddingCache


class CountingEncoder:
    """A deterministic fake encoder that records every text it is asked to encode."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts):
        self.seen.extend(texts)
        return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], dtype=np.float32).reshape(-1, 3)


def test_each_text_is_encoded_once_and_vectors_come_back_in_input_order(tmp_path):
    encoder = CountingEncoder()
    embed = EmbeddingCache(tmp_path, "model-a").embedder(encoder)
    first = embed(["b", "a", "b", "ccc"])
    second = embed(["ccc", "a", "dd"])
    assert sorted(encoder.seen) == ["a", "b", "ccc", "dd"]
    np.testing.assert_array_equal(first, encoder(["b", "a", "b", "ccc"]))
    np.testing.assert_array_equal(second, encoder(["ccc", "a", "dd"]))


def test_another_process_reads_what_was_stored_and_another_model_key_does_not(tmp_path):
    EmbeddingCache(tmp_path, "model-a").embedder(CountingEncoder())(["x", "y"])
    later, other = CountingEncoder(), CountingEncoder()
    again = EmbeddingCache(tmp_path, "model-a").embedder(later)(["y", "x", "z"])
    EmbeddingCache(tmp_path, "model-b").embedder(other)(["x"])
    assert later.seen == ["z"]
    assert other.seen == ["x"]
    np.testing.assert_array_equal(again, CountingEncoder()(["y", "x", "z"]))


def test_a_part_written_by_a_concurrent_process_is_picked_up_by_an_open_cache(tmp_path):
    reader, writer = EmbeddingCache(tmp_path, "m"), EmbeddingCache(tmp_path, "m")
    reader.embedder(CountingEncoder())(["warm"])
    writer.embedder(CountingEncoder())(["new"])
    late = CountingEncoder()
    reader.embedder(late)(["new", "warm"])
    assert late.seen == []
    assert not list(tmp_path.rglob(".writing-*")), "no half-written file is left behind"


def test_digests_with_trailing_zero_bytes_survive_a_round_trip(tmp_path):
    texts = [f"text {i}" for i in range(3000)]  # some sha256 prefixes end in 0x00: numpy's S dtype would strip them
    EmbeddingCache(tmp_path, "m").embedder(CountingEncoder())(texts)
    late = CountingEncoder()
    EmbeddingCache(tmp_path, "m").embedder(late)(texts)
    assert late.seen == []


def test_an_encoder_returning_the_wrong_number_of_rows_is_refused_and_nothing_is_stored(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    with pytest.raises(ValueError, match="1 vectors for 2 texts"):
        cache.embedder(lambda texts: np.zeros((1, 3), dtype=np.float32))(["a", "b"])
    assert not list(tmp_path.rglob("part-*.npz"))


def test_an_unreadable_part_is_skipped_and_its_texts_encoded_again(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    cache.embedder(CountingEncoder())(["a", "b"])
    (part,) = list(cache.directory.glob("part-*.npz"))
    part.write_bytes(b"truncated")
    late = CountingEncoder()
    EmbeddingCache(tmp_path, "m").embedder(late)(["a", "b"])
    assert late.seen == ["a", "b"]


def test_a_cache_that_cannot_be_written_still_returns_the_vectors(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    encoder = CountingEncoder()
    with pytest.warns(UserWarning, match="not stored"):
        vectors = EmbeddingCache(blocked, "m").embedder(encoder)(["a"])
    np.testing.assert_array_equal(vectors, encoder(["a"]))


def test_no_texts_asks_the_encoder_for_its_empty_shape(tmp_path):
    encoder = CountingEncoder()
    assert EmbeddingCache(tmp_path, "m").embedder(encoder)([]).shape == (0, 3)
