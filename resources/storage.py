"""Storage of every artifact under one root, keyed by asset and partition, committed atomically.

The root is a local directory or any fsspec URL (`s3://bucket/prefix`, `gs://...`, `abfs://...`), taken from
$INSTRUCTLF_STORAGE. Tables go to Parquet, artifacts (score matrix, factor model, encoder) to a directory of
their own files, so a reader never needs pickle and a matrix can be memory-mapped.

Every artifact directory carries a manifest, `artifact.json`, naming its kind: `table` or one of the short names
in `instructlf_assets.core.artifacts.ARTIFACT_KINDS`. The manifest never decides what code runs: a kind outside
that fixed table (a tampered `{"kind": "os:system"}`) is refused with an `ArtifactError` and nothing is imported.

How a write becomes visible:

- local paths: the artifact is written into a sibling temporary directory, then swapped in with two renames.
- object stores, which have no rename: every file is uploaded under a fresh, never reused version prefix
  (`<artifact>/versions/<id>/...`), then the manifest `<artifact>/artifact.json` naming that version is written
  last, in one PUT. A single-object PUT is atomic on S3, GCS and Azure, so a reader sees the previous manifest or
  the new one, never a half-written artifact; a writer killed before the manifest leaves an orphaned version
  that no manifest names (swept after an hour, like a local staging directory).
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

from instructlf_assets.core.artifacts import ARTIFACT_KINDS, LEGACY_KINDS, artifact_kind
from instructlf_assets.core.errors import ArtifactError

STORAGE_ENV = "INSTRUCTLF_STORAGE"
LOCAL_COPIES_ENV = "INSTRUCTLF_LOCAL_COPIES"
_MARKER = "artifact.json"
_VERSIONS = "versions"
ABANDONED_AFTER_S = 3600.0
TABLE_KIND = "table"
_VERSION_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")


def default_storage_root() -> str:
    """$INSTRUCTLF_STORAGE, else `instructlf/` inside $DAGSTER_HOME (or ./.dagster_home)."""
    explicit = os.environ.get(STORAGE_ENV)
    if explicit:
        return explicit
    home = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / ".dagster_home")
    return str(Path(home) / "instructlf")


def is_object_store(location: str | Path) -> bool:
    """True for a URL with a scheme other than file:// (s3://, gs://, memory://, ...)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local_path(location: str | Path) -> Path:
    """The directory a local location names (a plain path or a file:// URL)."""
    return Path(str(location).removeprefix("file://"))


def join_location(root: str | Path, *parts: str) -> str:
    """`root/part/...` for a local path or a URL alike (pathlib would turn `s3://b` into `s3:/b`)."""
    text = str(root)
    if is_object_store(text):
        return "/".join([text.rstrip("/"), *parts])
    return str(local_path(text).joinpath(*parts))


def local_scratch(location: str, name: str) -> Path:
    """A local directory standing in for `location/name` when `location` is an object store (models, copies)."""
    if not is_object_store(location):
        return Path(join_location(location, name))
    base = Path(os.environ.get(LOCAL_COPIES_ENV) or Path(tempfile.gettempdir()) / "instructlf-local")
    return base / hashlib.sha256(location.encode()).hexdigest()[:16] / name


class InstructLFIOManager(dg.ConfigurableIOManager):
    """Parquet for tables, self-describing directories for artifacts; one location per asset and partition."""

    base_dir: str

    def _location(self, context: dg.OutputContext | dg.InputContext) -> str:
        key = context.asset_key.path
        partition = context.asset_partition_key if context.has_asset_partitions else "__all__"
        return join_location(self.base_dir, *key, partition)

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        target = self._location(context)
        write_artifact(target, obj)
        context.add_output_metadata({"dagster/uri": dg.MetadataValue.path(target)})

    def load_input(self, context: dg.InputContext) -> object:
        return read_artifact(self._location(context))


def write_artifact(location: str | Path, obj: object) -> None:
    """Store `obj` at a local path or an object-store URL, replacing what was there only once complete."""
    if is_object_store(location):
        _write_to_object_store(str(location), obj)
    else:
        write_atomically(local_path(location), obj)


def read_artifact(location: str | Path) -> object:
    """The artifact at a local path or an object-store URL (the latter through a local, immutable copy)."""
    if is_object_store(location):
        return _read_from_object_store(str(location))
    return _read_local(local_path(location))


def _save_into(directory: Path, obj: object) -> str:
    """Write `obj`'s files and manifest into `directory`; return its kind."""
    if isinstance(obj, pd.DataFrame):
        obj.to_parquet(directory / "table.parquet")
        kind = TABLE_KIND
    else:
        kind = artifact_kind(obj)
        if kind is None:
            raise TypeError(
                f"cannot store {type(obj).__name__}: return a DataFrame or an artifact registered in "
                f"instructlf_assets.core.artifacts.ARTIFACT_KINDS ({', '.join(sorted(ARTIFACT_KINDS))})"
            )
        obj.save(directory)  # type: ignore[attr-defined]
    (directory / _MARKER).write_text(json.dumps({"kind": kind}))
    return kind


def _load(directory: Path, kind: str) -> object:
    if kind == TABLE_KIND:
        return pd.read_parquet(directory / "table.parquet")
    return ARTIFACT_KINDS[kind].load(directory)  # type: ignore[attr-defined]


def _manifest_kind(location: str | Path, manifest: object) -> str:
    """The registered kind a manifest names (old `module:Class` names of the project's classes map onto theirs).

    Anything else is refused before any code is chosen by it, so a tampered manifest imports nothing.
    """
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    kind = LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else kind
    if not isinstance(kind, str) or (kind != TABLE_KIND and kind not in ARTIFACT_KINDS):
        known = ", ".join([TABLE_KIND, *sorted(ARTIFACT_KINDS)])
        raise ArtifactError(
            f"stored artifact at {location}: {_MARKER} names kind {_printable(kind)}, not one of {known}; "
            "refusing to load it (re-materialize the asset to rewrite it)"
        )
    return kind


def _printable(value: object) -> str:
    """A manifest value quoted on one line and bounded, whatever a tamperer put there."""
    return repr(value)[:120]


# Local directories: temporary directory, then two renames.


def write_atomically(target: Path, obj: object) -> None:
    """Write into a sibling temporary directory, then swap it in with renames.

    A process killed at any point leaves either the old artifact or the new one in place (or, in the instant
    between the two renames, the old one under a retired name, which `_restore_retired` puts back).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    _restore_retired(target)
    _sweep_abandoned(target)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _save_into(staging, obj)
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        if target.exists():
            target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _retired(target: Path) -> list[Path]:
    """Complete previous versions left beside the target, newest first."""
    candidates = [p for p in target.parent.glob(f".{target.name}.old-*") if (p / _MARKER).is_file()]
    return sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _restore_retired(target: Path) -> None:
    if not (target / _MARKER).is_file() and not target.exists():
        for candidate in _retired(target)[:1]:
            candidate.rename(target)


def _sweep_abandoned(target: Path, older_than_s: float = ABANDONED_AFTER_S) -> None:
    """Staging directories of killed writers: removed once surely abandoned (a live writer is never that slow)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if now - leftover.stat().st_mtime > older_than_s:
                shutil.rmtree(leftover, ignore_errors=True)
        except FileNotFoundError:
            continue


def _read_local(path: Path) -> object:
    marker = path / _MARKER
    if not marker.is_file():
        retired = _retired(path) if not path.exists() else []
        if not retired:
            raise FileNotFoundError(f"no stored artifact at {path}; materialize the upstream asset first")
        path, marker = retired[0], retired[0] / _MARKER  # a writer was killed mid-swap; the old version is whole
    return _load(path, _manifest_kind(path, _parse_manifest(path, marker.read_bytes())))


def _parse_manifest(location: str | Path, content: bytes) -> object:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        raise ArtifactError(
            f"stored artifact at {location}: {_MARKER} is not valid JSON; re-materialize the asset to rewrite it"
        ) from None


# Object stores: immutable version prefixes, then the manifest as the commit.


def filesystem(url: str):
    """(fsspec filesystem, path within it) for an object-store URL."""
    import fsspec

    return fsspec.core.url_to_fs(url)


def _new_version() -> str:
    """Sortable by time and unique across writers: `20260101T120000-1a2b3c4d`."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def _version_age_s(version: str) -> float:
    try:
        stamp = time.strptime(version.split("-", 1)[0], "%Y%m%dT%H%M%S")
    except ValueError:
        return 0.0
    return time.time() - calendar.timegm(stamp)


def _read_manifest(fs, root: str) -> object | None:
    try:
        content = fs.cat_file(f"{root}/{_MARKER}")
    except FileNotFoundError:
        return None
    return _parse_manifest(root, content)


def _checked_manifest(url: str, manifest: object) -> tuple[str, str, list[str]]:
    """(kind, version, files) of an object-store manifest, each refused unless it is what a writer here writes.

    The version and file names become local paths, so one like `../../x` would write outside the copy.
    """
    kind = _manifest_kind(url, manifest)
    assert isinstance(manifest, dict)  # _manifest_kind refused anything else
    version, files = manifest.get("version"), manifest.get("files")
    if not isinstance(version, str) or not _VERSION_NAME.match(version):
        raise ArtifactError(f"stored artifact at {url}: {_MARKER} names version {_printable(version)}; refusing it")
    if not isinstance(files, list) or not all(isinstance(f, str) and _is_plain_relative(f) for f in files):
        raise ArtifactError(f"stored artifact at {url}: {_MARKER} lists unsafe file names; refusing it")
    return kind, version, files


def _is_plain_relative(name: str) -> bool:
    parts = name.split("/")
    return bool(name) and "\\" not in name and all(part not in ("", ".", "..") for part in parts)


def _write_to_object_store(url: str, obj: object) -> None:
    fs, root = filesystem(url)
    try:
        previous = _read_manifest(fs, root)
    except ArtifactError:  # a corrupt or tampered manifest: this write replaces it, so treat it as absent
        previous = None
    version = _new_version()
    with tempfile.TemporaryDirectory(prefix="instructlf-upload-") as scratch:
        staging = Path(scratch)
        kind = _save_into(staging, obj)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        for name in files:
            fs.put_file(str(staging / name), f"{root}/{_VERSIONS}/{version}/{name}")
    manifest = {"kind": kind, "version": version, "files": files, "committed_at": time.time()}
    fs.pipe_file(f"{root}/{_MARKER}", json.dumps(manifest).encode())  # the commit: one atomic PUT, written last
    previous_version = previous.get("version") if isinstance(previous, dict) else None
    keep = {version, previous_version if isinstance(previous_version, str) else version}
    _sweep_versions(fs, root, keep)


def _sweep_versions(fs, root: str, keep: set[str], older_than_s: float = ABANDONED_AFTER_S) -> None:
    """Remove versions neither current nor previous once older than an hour.

    The previous version stays: a reader that read the old manifest a moment ago may still be downloading it.
    Younger unnamed versions may belong to a live writer of the same partition; their turn comes later.
    """
    prefix = f"{root}/{_VERSIONS}"
    fs.invalidate_cache(prefix)
    try:
        versions = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(prefix, detail=False)]
    except FileNotFoundError:
        return
    for version in versions:
        if version not in keep and _version_age_s(version) > older_than_s:
            fs.rm(f"{prefix}/{version}", recursive=True)


def _read_from_object_store(url: str) -> object:
    fs, root = filesystem(url)
    manifest = _read_manifest(fs, root)
    if manifest is None:
        raise FileNotFoundError(f"no stored artifact at {url}; materialize the upstream asset first")
    kind, version, files = _checked_manifest(url, manifest)
    copy = local_scratch(url, version)
    if not copy.is_dir():
        # Versions are immutable, so a complete local copy of one never goes stale; it appears by a local rename.
        copy.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=copy.parent))
        try:
            for name in files:
                (staging / name).parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(f"{root}/{_VERSIONS}/{version}/{name}", str(staging / name))
            with contextlib.suppress(OSError):  # another reader finished the same copy first
                staging.rename(copy)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for older in copy.parent.iterdir():
            if older.name != copy.name and not older.name.startswith("."):
                shutil.rmtree(older, ignore_errors=True)
    return _load(copy, kind)
