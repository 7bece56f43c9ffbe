"""Storage of every artifact under one root, keyed by asset and partition, written atomically.

Tables go to Parquet, artifacts (score matrix, factor model, encoder) to a directory of their own files, so a
reader never needs pickle and a matrix can be memory-mapped.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
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
    """Write into a sibling temporary directory, then swap it in with renames."""
    target.parent.mkdir(parents=True, exist_ok=True)
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


def read_artifact(path: Path) -> object:
    marker = path / _MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"no stored artifact at {path}; materialize the upstream asset first")
    kind = json.loads(marker.read_text())["kind"]
    if kind == "table":
        return pd.read_parquet(path / "table.parquet")
    module, _, name = kind.partition(":")
    return getattr(importlib.import_module(module), name).load(path)
