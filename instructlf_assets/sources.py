"""The observed inputs: the corpus file and, per stage, the catalogue settings and back ends it reads.

Run config and files are not part of Dagster's data versions, so each input that changes an output is observed
as the data version of a source asset (`core/settings.py` declares which stage reads which catalogue field):

- `corpus_file` -> `raw_documents`: the corpus bytes (or generator parameters) and how they are read.
- `goal_spec` -> `property_proposals`: goal, prompt, proposer back end and LLM model.
- `encoder_spec` -> `compatibility_encoder`: the encoder strategy and truncation.
- `factor_spec` -> `latent_factors`: the number of factors.
- `task_spec` -> `downstream_evaluation`: the downstream task and its options.

Each of these feeds exactly one stage, so an edit re-runs that stage and what follows, and nothing above it.
One more, `base_encoder`, is the model every stage that embeds text starts from and the truncation it reads at
(`encoder.max_seq_length`); it feeds each of them (proposals, vocabulary, fine-tuning, scores, baselines), since
with an LLM proposer the proposals, and so their data version, do not depend on it. `peer_libraries` observes
whether the optional BERTopic peer is installed, which decides the baselines' rows.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
from dagster import OpExecutionContext

from resources import EncoderResource, ProposerResource

from .core.catalogue import DatasetSpec, data_dir, get_dataset, load_catalogue
from .core.corpus import corpus_fingerprint
from .core.settings import fingerprint, stage_settings
from .partitions import dataset_partitions

GROUP = "instructlf"


def stage_asset(**kwargs: object):
    """Every pipeline stage is one asset per dataset partition, in one group."""
    return dg.asset(partitions_def=dataset_partitions, group_name=GROUP, **kwargs)


def _partitions(context: dg.OpExecutionContext) -> list[str]:
    return [context.partition_key] if context.has_partition_key else sorted(load_catalogue()[0])


def _observe(context: OpExecutionContext, version: Callable[[DatasetSpec], str]) -> dg.DataVersionsByPartition:
    return dg.DataVersionsByPartition({key: dg.DataVersion(version(get_dataset(key))) for key in _partitions(context)})


def proposer_identity(proposer: ProposerResource) -> dict[str, object]:
    """What decides which properties are proposed, besides the goal and prompt: the back end and its model.

    Concurrency, timeouts and keys are left out: they change how fast, not what. The base encoder (which the
    offline back end reads) is a source of its own, `base_encoder`.
    """
    identity: dict[str, object] = {"backend": proposer.backend}
    if proposer.backend == "openai":
        identity.update(model=proposer.model, base_url=proposer.base_url)
    return identity


def base_encoder_identity(encoder: EncoderResource) -> str:
    """The configured model directory, or the packaged MiniLM's distribution and version."""
    return encoder.identity()


def corpus_version(spec: DatasetSpec) -> str:
    """The corpus bytes (or generator parameters) and the settings that say how they are read."""
    return fingerprint(
        {"corpus_bytes": corpus_fingerprint(spec, data_dir()), "settings": stage_settings(spec, "raw_documents")}
    )


def goal_version(spec: DatasetSpec, proposer: dict[str, object]) -> str:
    """The goal and prompt, and the identity of the proposer that reads them."""
    return fingerprint({"settings": stage_settings(spec, "property_proposals"), "proposer": proposer})


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def corpus_file(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's corpus as read: the hash of its bytes (or generator parameters) and of the reading settings."""
    return _observe(context, corpus_version)


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP, required_resource_keys={"proposer"})
def goal_spec(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's goal and prompt, and the proposer back end and model, observed as their hash."""
    identity = proposer_identity(context.resources.proposer)
    return _observe(context, lambda spec: goal_version(spec, identity))


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP, required_resource_keys={"encoder"})
def base_encoder(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The base sentence encoder that the offline proposer, the dedup, fine-tuning and the embeddings baseline
    start from (a configured directory, or the packaged MiniLM's version), observed as its identity."""
    identity = base_encoder_identity(context.resources.encoder)
    return _observe(
        context, lambda spec: fingerprint({"base_encoder": identity, "max_seq_length": spec.encoder.max_seq_length})
    )


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def encoder_spec(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's encoder settings (strategy, truncation), observed as their hash."""
    return _observe(context, lambda spec: fingerprint(stage_settings(spec, "compatibility_encoder")))


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def peer_libraries(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """Which optional peer libraries are installed (BERTopic adds a baseline row), observed as their versions."""
    versions = fingerprint({"bertopic": installed_version("bertopic")})
    return _observe(context, lambda spec: versions)


def installed_version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def factor_spec(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's factor settings (`n_factors`), observed as their hash."""
    return _observe(context, lambda spec: fingerprint(stage_settings(spec, "latent_factors")))


@dg.observable_source_asset(partitions_def=dataset_partitions, group_name=GROUP)
def task_spec(context: OpExecutionContext) -> dg.DataVersionsByPartition:
    """The dataset's downstream task and its options, observed as their hash."""
    return _observe(context, lambda spec: fingerprint(stage_settings(spec, "downstream_evaluation")))


# Which source carries the settings of which stage (the keys of core.settings.STAGE_FIELDS).
SETTINGS_SOURCES = {
    "raw_documents": corpus_file,
    "property_proposals": goal_spec,
    "compatibility_encoder": encoder_spec,
    "latent_factors": factor_spec,
    "downstream_evaluation": task_spec,
}
