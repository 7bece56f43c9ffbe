"""Stage 1: goal-related properties proposed for every train and valid document."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource, ProposerResource

from .checks import expect, spec
from .core.catalogue import DatasetSpec
from .core.content_version import combine, table_version
from .core.phrases import normalize_phrase
from .core.settings import stage_settings
from .metadata import markdown_table
from .partitions import dataset_for
from .publishing import publish
from .sources import base_encoder, base_encoder_identity, goal_spec, proposer_identity, stage_asset

ASSET = "property_proposals"
PROPOSED_SPLITS = ("train", "valid")


class ProposalConfig(dg.Config):
    max_failure_share: float = Field(
        0.2, ge=0.0, le=1.0, description="Fail the step if more than this share of documents got no property."
    )
    chunk_size: int = Field(
        5000,
        ge=1,
        description="Documents per chunk; under the Dask executor the chunks run as tasks across the cluster.",
    )


@stage_asset(
    deps=[goal_spec, base_encoder],
    code_version="3",  # 2: checks before storing; content data version; 3: candidates: one vocabulary, no intensifiers
    kinds={"pandas"},
    pool="llm",
    check_specs=[
        spec(ASSET, "failures_within_limit", "at most max_failure_share of the documents got no usable property"),
        spec(ASSET, "properties_are_short_phrases", "1..120 characters and never the goal echoed back"),
    ],
)
def property_proposals(
    context: AssetExecutionContext,
    config: ProposalConfig,
    raw_documents: pd.DataFrame,
    proposer: ProposerResource,
    encoder: EncoderResource,
) -> Iterator[object]:
    """Long table of proposals: doc_id, rank, property, relevance, proposer, model (train and valid documents)."""
    dataset = dataset_for(context)
    documents = raw_documents[raw_documents["split"].isin(PROPOSED_SPLITS)]
    context.log.info(f"proposing for {len(documents)} documents with {proposer.describe(dataset)}")
    run = proposer.propose_in_chunks(documents, dataset, encoder, config.chunk_size, log=context.log.info)
    table = run.table
    identity = proposer_identity(proposer)
    yield from publish(
        context,
        table,
        version=combine(table_version(table), table_version(run.failed)),
        checks=proposal_checks(dataset, documents, run.table, run.failed, config.max_failure_share),
        config=config,
        settings={
            **stage_settings(dataset, ASSET),
            "proposer": identity,
            "base_encoder": base_encoder_identity(encoder),
        },
        metadata={
            "dagster/row_count": len(table),
            "n_documents": len(documents),
            "n_failed_documents": len(run.failed),
            "properties_per_document": float(len(table) / max(len(documents) - len(run.failed), 1)),
            "n_distinct_properties": int(table["property"].nunique()),
            "proposer": proposer.describe(dataset),
            "proposer_backend": proposer.backend,
            **({"llm_model": proposer.model} if proposer.backend == "openai" else {}),
            **{k: v for k, v in run.stats.items() if isinstance(v, int | float | str)},
            "preview": markdown_table(table.head(15)),
            "failed_documents": markdown_table(run.failed),
        },
    )


def proposal_checks(
    dataset: DatasetSpec,
    documents: pd.DataFrame,
    table: pd.DataFrame,
    failed: pd.DataFrame,
    max_failure_share: float,
) -> list[dg.AssetCheckResult]:
    share = len(failed) / max(len(documents), 1)
    failures = pd.DataFrame({"failed_share": [share]})
    goal = normalize_phrase(dataset.goal)
    echoes = table.assign(is_echo=table["property"].map(lambda p: bool(goal) and goal in normalize_phrase(p)))
    return [
        expect(
            "failures_within_limit",
            failures,
            lambda gxe: [gxe.ExpectColumnValuesToBeBetween(column="failed_share", max_value=max_failure_share)],
            explain=f"dataset '{dataset.name}': {len(failed)} of {len(documents)} documents got no usable "
            f"property ({share:.0%} > max_failure_share {max_failure_share:.0%}; raise it in the asset config "
            f"to accept this); first failures: {failed.head(3).to_dict('records')}",
            failed_share=share,
        ),
        expect(
            "properties_are_short_phrases",
            echoes,
            lambda gxe: [
                gxe.ExpectColumnValueLengthsToBeBetween(column="property", min_value=1, max_value=120),
                gxe.ExpectColumnValuesToBeInSet(column="is_echo", value_set=[False]),
            ],
            explain="a property is empty, longer than 120 characters, or repeats the goal",
        ),
    ]
