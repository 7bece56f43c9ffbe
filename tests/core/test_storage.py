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
