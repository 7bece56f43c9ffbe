import json
import time

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


def a_matrix() -> ScoreMatrix:
    return ScoreMatrix(np.eye(2, dtype=np.float32), np.array(["d1", "d2"]), np.array(["p0", "p1"]))


def test_a_failed_write_keeps_the_previous_artifact(tmp_path, monkeypatch):
    write_atomically(tmp_path / "t", pd.DataFrame({"a": [1]}))

    def exploding_save(self, directory):
        (directory / "half.bin").write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ScoreMatrix, "save", exploding_save)
    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(tmp_path / "t", a_matrix())
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


# Object stores (any fsspec URL; memory:// stands in for s3:// here): versions, then the manifest as the commit.


@pytest.fixture
def store(tmp_path, monkeypatch):
    import fsspec

    monkeypatch.setenv("INSTRUCTLF_LOCAL_COPIES", str(tmp_path / "copies"))
    fs = fsspec.filesystem("memory")
    root = f"/instructlf-{tmp_path.name}"
    yield fs, root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_object_store_round_trip_through_a_manifest_written_last(store):
    from resources.storage import write_artifact

    fs, root = store
    matrix = ScoreMatrix(np.eye(3, dtype=np.float32), np.array(["d1", "d2", "d3"]), np.array(["p0", "p1", "p2"]))
    write_artifact(f"memory://{root}/m", matrix)
    manifest = json.loads(fs.cat_file(f"{root}/m/artifact.json"))
    assert sorted(manifest["files"]) == ["artifact.json", "columns.parquet", "rows.parquet", "scores.npy"]
    assert all(fs.exists(f"{root}/m/versions/{manifest['version']}/{name}") for name in manifest["files"])
    loaded = read_artifact(f"memory://{root}/m")
    assert np.array_equal(loaded.values, matrix.values) and list(loaded.doc_ids) == ["d1", "d2", "d3"]


def test_object_store_failed_write_keeps_the_committed_version(store):
    from resources.storage import write_artifact

    fs, root = store
    write_artifact(f"memory://{root}/t", pd.DataFrame({"a": [1]}))
    with pytest.MonkeyPatch.context() as patch:
        # The files are uploaded, then the connection drops on the manifest PUT that would commit them.
        patch.setattr(type(fs), "pipe_file", lambda *a, **k: (_ for _ in ()).throw(OSError("connection reset")))
        with pytest.raises(OSError, match="connection reset"):
            write_artifact(f"memory://{root}/t", a_matrix())
    assert read_artifact(f"memory://{root}/t")["a"].tolist() == [1]
    assert len(fs.ls(f"{root}/t/versions")) == 2, "the orphaned upload stays until surely abandoned"


def test_object_store_keeps_current_and_previous_and_sweeps_old_orphans(store):
    from resources.storage import write_artifact

    fs, root = store
    fs.pipe_file(f"{root}/t/versions/20200101T000000-0badc0de/table.parquet", b"orphan of a killed writer")
    young = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-1234abcd"
    fs.pipe_file(f"{root}/t/versions/{young}/table.parquet", b"maybe a live writer")
    for value in (1, 2, 3):
        write_artifact(f"memory://{root}/t", pd.DataFrame({"a": [value]}))
    versions = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(f"{root}/t/versions", detail=False)}
    assert "20200101T000000-0badc0de" not in versions and young in versions
    assert len(versions) == 4, "young orphan + versions of writes 1 (not yet an hour old), 2 (previous), 3 (current)"
    assert read_artifact(f"memory://{root}/t")["a"].tolist() == [3]


def test_object_store_missing_artifact_says_what_to_do(store):
    _, root = store
    with pytest.raises(FileNotFoundError, match="materialize the upstream asset first"):
        read_artifact(f"memory://{root}/nothing")


def test_locations_join_for_paths_and_urls(tmp_path):
    from resources.storage import is_object_store, join_location

    assert join_location("s3://bucket/prefix/", "scores", "demo") == "s3://bucket/prefix/scores/demo"
    assert join_location(str(tmp_path), "scores", "demo") == str(tmp_path / "scores" / "demo")
    assert join_location(f"file://{tmp_path}", "x") == str(tmp_path / "x")
    assert is_object_store("gs://b") and not is_object_store(str(tmp_path)) and not is_object_store("file:///x")


def test_object_store_reply_cache_is_one_object_per_reply_and_safe_for_many_writers(store):
    from concurrent.futures import ThreadPoolExecutor

    from resources.llm_cache import ObjectStoreResponseCache, open_response_cache

    fs, root = store
    cache = open_response_cache(f"memory://{root}/llm_cache")
    assert isinstance(cache, ObjectStoreResponseCache)
    keys = [f"{i:02x}{'k' * 10}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:  # every key written twice, concurrently: the last PUT wins, both valid
        list(pool.map(lambda key: cache.put(key, f"reply {key}", {"prompt_tokens": 2}), keys + keys))
    assert all(cache.get(key) == f"reply {key}" for key in keys)
    assert cache.get("ffmissing") is None
    stats = cache.stats()
    assert stats["entries"] == 40 and stats["stored_prompt_tokens"] == 80 and stats["writes"] == 80
    assert len(fs.find(f"{root}/llm_cache/replies")) == 40


# Manifests name a kind from a fixed table; they never choose what code is imported.

PLANTED = """
import pathlib
pathlib.Path({canary!r}).write_text("imported")


class Thing:
    @classmethod
    def load(cls, directory):
        pathlib.Path({canary!r}).write_text("loaded")
"""


@pytest.fixture
def planted_module(tmp_path, monkeypatch):
    """A module on sys.path that leaves a canary file behind if anything imports it."""
    import sys

    canary = tmp_path / "canary"
    modules = tmp_path / "planted"
    modules.mkdir()
    (modules / "instructlf_planted.py").write_text(PLANTED.format(canary=str(canary)))
    monkeypatch.syspath_prepend(str(modules))
    yield canary
    assert "instructlf_planted" not in sys.modules, "the planted module was imported"
    assert not canary.exists(), "the planted module ran"


def test_manifests_record_short_kind_names(tmp_path):
    write_atomically(tmp_path / "t", pd.DataFrame({"a": [1]}))
    write_atomically(tmp_path / "m", a_matrix())
    assert json.loads((tmp_path / "t" / "artifact.json").read_text()) == {"kind": "table"}
    assert json.loads((tmp_path / "m" / "artifact.json").read_text()) == {"kind": "score_matrix"}


@pytest.mark.parametrize("kind", ["os:system", "instructlf_planted:Thing", "subprocess:Popen", ["table"], None])
def test_a_tampered_manifest_is_refused_and_imports_nothing(tmp_path, planted_module, kind):
    from instructlf_assets.core.errors import ArtifactError, InstructLFError

    write_atomically(tmp_path / "m", a_matrix())
    (tmp_path / "m" / "artifact.json").write_text(json.dumps({"kind": kind}))
    with pytest.raises(ArtifactError) as raised:
        read_artifact(tmp_path / "m")
    message = str(raised.value)
    assert isinstance(raised.value, InstructLFError) and "\n" not in message
    assert str(tmp_path / "m") in message and repr(kind)[:60] in message


def test_an_unreadable_manifest_is_an_artifact_error(tmp_path):
    from instructlf_assets.core.errors import ArtifactError

    write_atomically(tmp_path / "t", pd.DataFrame({"a": [1]}))
    (tmp_path / "t" / "artifact.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_artifact(tmp_path / "t")


def test_old_module_class_manifests_of_the_projects_own_artifacts_still_load(tmp_path):
    write_atomically(tmp_path / "m", a_matrix())
    legacy = {"kind": "instructlf_assets.core.artifacts:ScoreMatrix"}
    (tmp_path / "m" / "artifact.json").write_text(json.dumps(legacy))
    assert list(read_artifact(tmp_path / "m").doc_ids) == ["d1", "d2"]


def test_only_registered_artifact_classes_can_be_written(tmp_path):
    class Unregistered(ScoreMatrix):
        pass

    with pytest.raises(TypeError, match="ARTIFACT_KINDS"):
        write_atomically(tmp_path / "m", Unregistered(*vars(a_matrix()).values()))
    assert not (tmp_path / "m").exists()


def test_object_store_tampered_manifest_is_refused_and_imports_nothing(store, planted_module):
    from instructlf_assets.core.errors import ArtifactError
    from resources.storage import write_artifact

    fs, root = store
    write_artifact(f"memory://{root}/m", a_matrix())
    manifest = json.loads(fs.cat_file(f"{root}/m/artifact.json"))
    fs.pipe_file(f"{root}/m/artifact.json", json.dumps({**manifest, "kind": "instructlf_planted:Thing"}).encode())
    with pytest.raises(ArtifactError, match=r"memory://.*'instructlf_planted:Thing'"):
        read_artifact(f"memory://{root}/m")


@pytest.mark.parametrize(
    "change", [{"version": "../../escape"}, {"files": ["../../escape.bin"]}, {"files": ["/etc/passwd"]}]
)
def test_object_store_manifest_cannot_write_outside_the_local_copy(store, tmp_path, change):
    from instructlf_assets.core.errors import ArtifactError
    from resources.storage import write_artifact

    fs, root = store
    write_artifact(f"memory://{root}/m", a_matrix())
    manifest = json.loads(fs.cat_file(f"{root}/m/artifact.json"))
    fs.pipe_file(f"{root}/m/artifact.json", json.dumps({**manifest, **change}).encode())
    with pytest.raises(ArtifactError, match="refusing it"):
        read_artifact(f"memory://{root}/m")
    assert not any(p.name.startswith("escape") for p in tmp_path.rglob("*"))
