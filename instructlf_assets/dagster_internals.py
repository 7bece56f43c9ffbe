"""The Dagster internals this project needs where no public API does the job, in one place.

- Stale status: Dagster shows "stale" in the UI and uses it in declarative automation, but exposes it only
  through `CachingStaleStatusResolver`. The CLI and the refresh sensor need the same answer the UI gives.
- The Dask executor (`resources/dask_executor.py`) re-implements dagster-dask's task submission and needs the
  two helpers dagster-dask itself uses to stop cleanly on interrupts.

`dagster<1.14` is pinned in pyproject.toml; `tests/test_dagster_internals.py` fails loudly when a release moves
any of these names, so an upgrade breaks one test, not every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.errors import raise_execution_interrupts
from dagster._time import get_current_datetime
from dagster._utils import iterate_with_context

__all__ = ["AssetGraph", "StaleStatusReader", "iterate_with_context", "raise_execution_interrupts"]


@dataclass
class StaleStatusReader:
    """Stale status and its causes, as the Dagster UI computes them, for one snapshot of the instance."""

    resolver: CachingStaleStatusResolver

    @classmethod
    def for_graph(cls, instance: dg.DagsterInstance, graph: AssetGraph) -> StaleStatusReader:
        view = AssetGraphView(
            temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
            instance=instance,
            asset_graph=graph,
        )
        return cls(CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view))

    def is_missing(self, key: dg.AssetKey, partition_key: str) -> bool:
        return self.resolver.get_status(key, partition_key) == StaleStatus.MISSING

    def is_stale(self, key: dg.AssetKey, partition_key: str) -> bool:
        return self.resolver.get_status(key, partition_key) == StaleStatus.STALE

    def causes(self, key: dg.AssetKey, partition_key: str) -> list[str]:
        """Why an asset is stale, in Dagster's words ("has a new dependency data version", ...)."""
        return [
            f"{cause.key.asset_key.to_user_string()}: {cause.reason}"
            for cause in self.resolver.get_stale_root_causes(key, partition_key)
        ]
