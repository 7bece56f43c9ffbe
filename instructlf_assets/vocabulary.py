"""Stage 2: the deduplicated property vocabulary."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource

from .checks import expect, spec
from .core.content_version import table_version
from .core.dedup import DedupOptions, Vocabulary, build_vocabulary, map_proposals
from .metadata import markdown_table
from .partitions import dataset_for
from .publishing import publish
from .sources import base_encoder, stage_asset

ASSET = "property_vocabulary"
MIN_PROPERTIES = 2


class VocabularyConfig(dg.Config):
    merge_threshold: float = Field(0.85, gt=0.0, le=1.0, description="Cosine similarity at which phrases merge.")
    min_support: int = Field(3, ge=1, description="Keep properties proposed for at least this many documents.")
    max_properties: int = Field(2000, ge=2, description="Keep at most this many, by support.")
    min_coverage: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Warn when fewer than this share of training documents have any vocabulary property.",
    )


@stage_asset(
    deps=[base_encoder],
    code_version="2",  # 2: checks before storing; content data version; checks that can fail
    kinds={"pandas"},
    check_specs=[
        spec(ASSET, "vocabulary_is_large_enough", f"at least {MIN_PROPERTIES} properties reached min_support"),
        spec(
            ASSET,
            "vocabulary_covers_documents",
            "at least min_coverage of the training documents have a vocabulary property",
            blocking=False,
        ),
    ],
)
def property_vocabulary(
    context: AssetExecutionContext,
    config: VocabularyConfig,
    raw_documents: pd.DataFrame,
    property_proposals: pd.DataFrame,
    encoder: EncoderResource,
) -> Iterator[object]:
    """Properties after normalisation, near-duplicate merging and pruning: property_id, text, support, variants.

    Built from train documents only, so nothing about validation or test documents leaks into the features.
    """
    options = DedupOptions(config.merge_threshold, config.min_support, config.max_properties)
    train_ids = raw_documents.loc[raw_documents["split"] == "train", "doc_id"]
    train_like = property_proposals[property_proposals["doc_id"].isin(train_ids)]
    embed = encoder.base_embedder(dataset_for(context).encoder.max_seq_length)
    vocabulary = build_vocabulary(train_like, embed, options)
    table = vocabulary.table
    yield from publish(
        context,
        table,
        version=table_version(table),
        checks=vocabulary_checks(context.partition_key, vocabulary, train_like, train_ids, config),
        config=config,
        metadata={
            "dagster/row_count": len(table),
            "n_proposals": vocabulary.n_raw,
            "n_distinct_normalised": vocabulary.n_normalised,
            "n_merged_away": vocabulary.n_normalised - len(table) - vocabulary.n_pruned,
            "n_pruned_low_support": vocabulary.n_pruned,
            "preview": markdown_table(table.assign(variants=table["variants"].map(len)), 25),
        },
    )


def vocabulary_checks(
    dataset: str,
    vocabulary: Vocabulary,
    train_proposals: pd.DataFrame,
    train_ids: pd.Series,
    config: VocabularyConfig,
) -> list[dg.AssetCheckResult]:
    table = vocabulary.table
    size = pd.DataFrame({"n_properties": [len(table)]})
    mapped = map_proposals(train_proposals, vocabulary)
    covered = set(mapped.loc[mapped["property_id"].notna(), "doc_id"])
    coverage = len(covered & set(train_ids)) / max(len(train_ids), 1)
    return [
        expect(
            "vocabulary_is_large_enough",
            size,
            lambda gxe: [gxe.ExpectColumnValuesToBeBetween(column="n_properties", min_value=MIN_PROPERTIES)],
            explain=f"dataset '{dataset}': only {len(table)} propert(y/ies) reached min_support "
            f"{config.min_support} (from {vocabulary.n_normalised} distinct proposals); lower min_support "
            f"(`--config` with ops: {{property_vocabulary: {{config: {{min_support: 2}}}}}}) or propose for "
            f"more documents",
        ),
        expect(
            "vocabulary_covers_documents",
            pd.DataFrame({"coverage": [coverage]}),
            lambda gxe: [gxe.ExpectColumnValuesToBeBetween(column="coverage", min_value=config.min_coverage)],
            severity=dg.AssetCheckSeverity.WARN,
            explain=f"only {coverage:.0%} of training documents have a vocabulary property "
            f"(min_coverage {config.min_coverage:.0%}): lower min_support, or expect weak factors",
            coverage=coverage,
        ),
    ]
