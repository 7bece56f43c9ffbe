"""Storage of every artifact under one root, keyed by asset and partition, written atomically.

Tables go to Parquet, artifacts (score matrix, factor model, encoder) to a directory of their own files, so a
reader never needs pickle and a matrix can be memory-mapped.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd

STORAGE_ENV = "INSTRUCTLF_STORAGE"
_MARKER = "artifact.json"


def default_storage_root() -> str:
    """$INSTRUCTLF_STORAGE, else `instructlf/` inside $DAGSTER_HOME (or ./.dagster_home)."""
    explicit = os.environ.get(STORAGE_ENV)
    if explicit:
        return explicit
    home = os.environ.get("DAGSTER_HOME") or str(Path.cwd() / ".dagster_home")
    return str(Path(home) / "instructlf")


class InstructLFIOManager(dg.ConfigurableIOManager):
    """Parquet for tables, self-describing directories for artifacts; one directory per asset and partition."""

    base_dir: str

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        key = context.asset_key.path
        partition = context.asset_partition_key if context.has_asset_partitions else "__all__"
        return Path(self.base_dir, *key, partition)

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        target = self._path(context)
        write_atomically(target, obj)
        context.add_output_metadata({"dagster/uri": dg.MetadataValue.path(str(target))})

    def load_input(self, context: dg.InputContext) -> object:
        return read_artifact(self._path(context))


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
        if isinstance(obj, pd.DataFrame):
            obj.to_parquet(staging / "table.parquet")
            kind = "table"
        elif hasattr(obj, "save") and hasattr(type(obj), "load"):
            obj.save(staging)
            kind = f"{type(obj).__module__}:{type(obj).__qualname__}"
        else:
            raise TypeError(f"cannot store {type(obj).__name__}: return a DataFrame or an artifact with save/load")
        (staging / _MARKER).write_text(json.dumps({"kind": kind}))
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


def _sweep_abandoned(target: Path, older_than_s: float = 3600.0) -> None:
    """Staging directories of killed writers: removed once surely abandoned (a live writer is never that slow)."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        try:
            if now - leftover.stat().st_mtime > older_than_s:
                shutil.rmtree(leftover, ignore_errors=True)
        except FileNotFoundError:
            continue


def read_artifact(path: Path) -> object:
    marker = path / _MARKER
    if not marker.is_file():
        retired = _retired(path) if not path.exists() else []
        if not retired:
            raise FileNotFoundError(f"no stored artifact at {path}; materialize the upstream asset first")
        path, marker = retired[0], retired[0] / _MARKER  # a writer was killed mid-swap; the old version is whole
    kind = json.loads(marker.read_text())["kind"]
    if kind == "table":
        return pd.read_parquet(path / "table.parquet")
    module, _, name = kind.partition(":")
    return getattr(importlib.import_module(module), name).load(path)
