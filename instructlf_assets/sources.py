"""The two observable inputs: the goal (as data, not run config) and the corpus file.

Run config is not part of Dagster's data versions, so a goal passed as config could never mark anything stale.
Here each is observed as a hash: a changed goal makes `property_proposals` stale, a changed corpus file makes
`raw_documents` stale, and nothing else moves.
"""

import dagster as dg
from dagster import OpExecutionContext

from .core.catalogue import data_dir, get_dataset, load_catalogue
from .core.corpus import corpus_fingerprint
from .partitions import dataset_partitions

GROUP = "instructlf"


def stage_asset(**kwargs: object):
    """Every pipeline stage is one asset per dataset partition, in one group."""
    return dg.asset(partitions_def=dataset_partitions, group_name=GROUP, **kwargs)


def _partitions(context: dg.OpExecutionContext) -> list[str]:
    return [context.partition_key] if context.has_partition_key else sorted(load_catalogue()[0])


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def goal_spec(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's goal, prompt and proposal options, observed as their hash."""
    return dg.DataVersionsByPartition(
        {key: dg.DataVersion(get_dataset(key).goal_fingerprint()) for key in _partitions(context)}
    )


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def corpus_file(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's corpus file (or generator parameters), observed as the hash of its bytes."""
    return dg.DataVersionsByPartition(
        {key: dg.DataVersion(corpus_fingerprint(get_dataset(key), data_dir())) for key in _partitions(context)}
    )
