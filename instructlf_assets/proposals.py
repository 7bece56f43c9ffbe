"""Stage 1: goal-related properties proposed for every train and valid document."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource, ProposerResource

from .checks import expect, spec
from .core.errors import ProposerError
from .core.phrases import normalize_phrase
from .metadata import markdown_table
from .partitions import dataset_for
from .sources import goal_spec, stage_asset

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
    deps=[goal_spec],
    code_version="1",
    kinds={"pandas"},
    pool="llm",
    check_specs=[
        spec(
            ASSET,
            "every_document_has_a_property",
            "each proposed document got >= 1 property or is listed as failed",
        ),
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
    context.log.info(f"proposing for {len(documents)} documents with {proposer.describe()}")
    run = proposer.propose_in_chunks(documents, dataset, encoder, config.chunk_size, log=context.log.info)
    failure_share = len(run.failed) / max(len(documents), 1)
    if failure_share > config.max_failure_share:
        raise ProposerError(
            f"dataset '{dataset.name}': {len(run.failed)} of {len(documents)} documents got no usable property "
            f"({failure_share:.0%} > max_failure_share {config.max_failure_share:.0%}); first failures: "
            f"{run.failed.head(3).to_dict('records')}"
        )
    table = run.table
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "n_documents": len(documents),
            "n_failed_documents": len(run.failed),
            "properties_per_document": float(len(table) / max(len(documents) - len(run.failed), 1)),
            "n_distinct_properties": int(table["property"].nunique()),
            "proposer": proposer.describe(),
            **{k: v for k, v in run.stats.items() if isinstance(v, int | float | str)},
            "preview": markdown_table(table.head(15)),
            "failed_documents": markdown_table(run.failed),
        },
    )
    covered = pd.DataFrame({"doc_id": documents["doc_id"]})
    covered["n_properties"] = covered["doc_id"].map(table.groupby("doc_id").size()).fillna(0).astype(int)
    covered["failed"] = covered["doc_id"].isin(run.failed["doc_id"])
    covered["covered"] = (covered["n_properties"] > 0) | covered["failed"]
    yield expect(
        "every_document_has_a_property",
        covered,
        lambda gxe: [gxe.ExpectColumnValuesToBeInSet(column="covered", value_set=[True])],
    )
    goal = normalize_phrase(dataset.goal)
    echoes = table.assign(is_echo=table["property"].map(lambda p: bool(goal) and goal in normalize_phrase(p)))
    yield expect(
        "properties_are_short_phrases",
        echoes,
        lambda gxe: [
            gxe.ExpectColumnValueLengthsToBeBetween(column="property", min_value=1, max_value=120),
            gxe.ExpectColumnValuesToBeInSet(column="is_echo", value_set=[False]),
        ],
    )
