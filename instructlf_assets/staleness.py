"""What is stale for a dataset partition, and why: the rule behind `instructlf run`, `plan` and the refresh sensor.

It is the UI's "Materialize stale and missing" for one partition, plus what lies downstream: Dagster marks only the
direct children of a changed input stale (their own children turn stale once they re-run), so selecting the
descendants too gives the whole refresh in one run.
"""

from __future__ import annotations

import dagster as dg

from .assets import PIPELINE
from .dagster_internals import AssetGraph, StaleStatusReader


def stale_or_missing(
    instance: dg.DagsterInstance, graph: AssetGraph, partition_key: str, also: frozenset[dg.AssetKey] = frozenset()
) -> list[dg.AssetKey]:
    """Pipeline assets that are missing, stale or in `also` for the partition, plus everything downstream.

    `graph`: `Definitions.resolve_asset_graph()`, or a sensor's `context.repository_def.asset_graph`.
    """
    return [key for key, _ in selection_with_reasons(instance, graph, partition_key, also)]


def selection_with_reasons(
    instance: dg.DagsterInstance,
    graph: AssetGraph,
    partition_key: str,
    also: frozenset[dg.AssetKey] = frozenset(),
) -> list[tuple[dg.AssetKey, str]]:
    """(asset, why it runs) in lineage order: missing, stale (with Dagster's causes), requested, or downstream."""
    reader = StaleStatusReader.for_graph(instance, graph)
    selected: dict[dg.AssetKey, str] = {}
    for asset in PIPELINE:
        key = asset.key
        parents = [parent for parent in graph.get(key).parent_keys if parent in selected]
        if reader.is_missing(key, partition_key):
            selected[key] = "never materialized"
        elif reader.is_stale(key, partition_key):
            selected[key] = "stale: " + "; ".join(reader.causes(key, partition_key))
        elif key in also:
            selected[key] = "its config differs from the one that made the stored version"
        elif parents:
            selected[key] = f"downstream of {parents[0].to_user_string()}"
    return list(selected.items())
