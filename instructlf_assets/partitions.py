"""One partition per catalogue entry: a backfill over datasets is a Dagster partitioned backfill.

The partitions are dynamic (kept in the Dagster instance) rather than static (fixed when the code loads), so a
new catalogue entry becomes a partition when the catalogue sensor or `instructlf run` sees it, without reloading
the code location; a dataset removed from the catalogue keeps its history.
"""

from __future__ import annotations

import dagster as dg

from .core.catalogue import DatasetSpec, get_dataset, load_catalogue

PARTITIONS_NAME = "datasets"
dataset_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS_NAME)


def dataset_for(context: dg.AssetExecutionContext) -> DatasetSpec:
    """The entry as it is *now* on disk, so an edited goal is what gets computed."""
    return get_dataset(context.partition_key)


def known_partitions(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(PARTITIONS_NAME))


def ensure_partition(instance: dg.DagsterInstance, name: str) -> bool:
    """Add the dataset's partition if it is new; True when it was added."""
    if instance.has_dynamic_partition(PARTITIONS_NAME, name):
        return False
    instance.add_dynamic_partitions(PARTITIONS_NAME, [name])
    return True


def new_catalogue_entries(instance: dg.DagsterInstance) -> tuple[list[str], dict[str, str]]:
    """Valid entries without a partition yet, and the error of each invalid entry (which gets no partition)."""
    entries, errors = load_catalogue()
    existing = set(known_partitions(instance))
    return sorted(name for name in entries if name not in existing), errors
