"""Work split into chunks, run here or spread over the Dask cluster the current step runs on.

Under `INSTRUCTLF_EXECUTOR=dask` every step is a task on a Dask worker. A step that splits its work calls
`map_chunks`: the step's task secedes from its worker thread (`worker_client`) and each chunk becomes a task of
its own, which the scheduler places on any worker of the cluster; the results come back in input order. Under
any other executor the chunks run one after another in the step's process. The chunks and their order are the
same either way, so the result does not depend on where they ran.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TypeVar

import dagster as dg
import pandas as pd

Chunk = TypeVar("Chunk")
Result = TypeVar("Result")


def resource_fields(resource: dg.ConfigurableResource, leave_out: Collection[str] = ()) -> dict[str, object]:
    """A resource's configured values as plain data, to rebuild it in another process.

    Dagster resources do not survive a pickle round trip (their config schema does not unpickle), and one bound
    to a run also holds its loggers; the values do, and `type(resource)(**fields)` rebuilds it on the worker.
    """
    return {name: getattr(resource, name) for name in type(resource).model_fields if name not in leave_out}


def split_rows(frame: pd.DataFrame, chunk_size: int) -> list[pd.DataFrame]:
    """Consecutive runs of `chunk_size` rows (one empty chunk for an empty frame, so callers see its columns)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [frame.iloc[start : start + chunk_size] for start in range(0, len(frame), chunk_size)] or [frame]


def on_dask_worker() -> bool:
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:
        return False
    return True


def map_chunks(fn: Callable[[Chunk], Result], chunks: Sequence[Chunk]) -> list[Result]:
    """`[fn(chunk) for chunk in chunks]`, as Dask tasks across the cluster when this step runs on a Dask worker."""
    if len(chunks) <= 1 or not on_dask_worker():
        return [fn(chunk) for chunk in chunks]
    from distributed import worker_client

    with worker_client() as client:  # secedes, so a single-threaded worker can run the chunk tasks itself
        return client.gather(client.map(fn, list(chunks), pure=False))
