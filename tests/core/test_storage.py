import numpy as np
import pandas as pd
import pytest

from instructlf_assets.core.artifacts import ScoreMatrix
from resources.storage import read_artifact, write_atomically


def test_tables_and_matrices_round_trip(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": [["x"], ["y", "z"]]})
    write_atomically(tmp_path / "t", table)
    pd.testing.assert_frame_equal(read_artifact(tmp_path / "t"), table)
    matrix = ScoreMatrix(np.eye(3, dtype=np.float32), np.array(["d1", "d2", "d3"]), np.array(["p0", "p1", "p2"]))
    write_atomically(tmp_path / "m", matrix)
    loaded = read_artifact(tmp_path / "m")
    assert isinstance(loaded.values, np.memmap) and np.array_equal(loaded.values, matrix.values)


def test_a_failed_write_keeps_the_previous_artifact(tmp_path):
    write_atomically(tmp_path / "t", pd.DataFrame({"a": [1]}))

    class Exploding:
        def save(self, directory):
            (directory / "half.bin").write_bytes(b"partial")
            raise RuntimeError("disk full")

        @classmethod
        def load(cls, directory):  # pragma: no cover - never reached
            return cls()

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(tmp_path / "t", Exploding())
    assert read_artifact(tmp_path / "t")["a"].tolist() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t"]


def test_missing_artifact_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="materialize the upstream asset first"):
        read_artifact(tmp_path / "nothing")


def test_a_writer_killed_between_the_two_renames_loses_nothing(tmp_path):
    table = pd.DataFrame({"a": [1, 2]})
    write_atomically(tmp_path / "t", table)
    (tmp_path / "t").rename(tmp_path / ".t.old-deadbeef")  # the state a kill -9 mid-swap leaves behind
    pd.testing.assert_frame_equal(read_artifact(tmp_path / "t"), table)
    write_atomically(tmp_path / "u", table)  # another artifact's write does not touch it
    assert (tmp_path / ".t.old-deadbeef").is_dir()
    newer = pd.DataFrame({"a": [3]})
    write_atomically(tmp_path / "t", newer)
    pd.testing.assert_frame_equal(read_artifact(tmp_path / "t"), newer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t", "u"]


def test_abandoned_staging_directories_are_swept(tmp_path):
    import os
    import time

    abandoned = tmp_path / ".t.tmp-0badc0de"
    abandoned.mkdir()
    (abandoned / "half.bin").write_bytes(b"partial")
    old = time.time() - 7200
    os.utime(abandoned, (old, old))
    recent = tmp_path / ".t.tmp-1234abcd"
    recent.mkdir()
    write_atomically(tmp_path / "t", pd.DataFrame({"a": [1]}))
    assert not abandoned.exists() and recent.exists(), "a recent staging dir may belong to a live writer"
