"""One partition per catalogue entry: a backfill over datasets is a Dagster partitioned backfill."""

from __future__ import annotations

import dagster as dg

from .core.catalogue import DatasetSpec, get_dataset, load_catalogue

CATALOGUE, CATALOGUE_ERRORS = load_catalogue()
dataset_partitions = dg.StaticPartitionsDefinition(sorted(CATALOGUE))


def dataset_for(context: dg.AssetExecutionContext) -> DatasetSpec:
    """The entry as it is *now* on disk, so an edited goal is what gets computed."""
    return get_dataset(context.partition_key)
