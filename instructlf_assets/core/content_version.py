"""Data versions from content: the hash of what a stage produced, not of how it was asked to produce it.

Each stage reports the hash of its output as its Dagster data version. Then any change that alters an output
(a catalogue setting, an asset's run config from the Launchpad, new code) marks exactly its dependants stale, and a
change that does not alter it (a cap no document reaches) marks nothing. Dagster's default data version would
hash only the code version and the inputs' versions, so a re-run with other config would look unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROWS_PER_BLOCK = 4096


def combine(*parts: str) -> str:
    """One version from several (order matters)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def table_version(frame: pd.DataFrame) -> str:
    """Hash of a table's columns, dtypes and values; list-valued cells (variants, top properties) included."""
    digest = hashlib.sha256(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    if len(frame):
        hashable = frame.apply(lambda column: column.map(_cell) if column.dtype == object else column)
        digest.update(pd.util.hash_pandas_object(hashable, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:24]


def _cell(value: object) -> object:
    if isinstance(value, list | tuple | np.ndarray | dict):
        return json.dumps(value.tolist() if isinstance(value, np.ndarray) else value, default=str)
    return value


def array_version(values: np.ndarray) -> str:
    """Hash of an array's shape, dtype and bytes, a block of rows at a time (a memory map is never read whole)."""
    digest = hashlib.sha256(f"{values.shape}{values.dtype}".encode())
    for start in range(0, len(values), ROWS_PER_BLOCK):
        digest.update(np.ascontiguousarray(values[start : start + ROWS_PER_BLOCK]).tobytes())
    return digest.hexdigest()[:24]


def directory_version(directory: Path) -> str:
    """Hash of every file's relative path and bytes (a saved model)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:24]
