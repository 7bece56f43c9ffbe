"""Stage 2: the deduplicated property vocabulary."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource

from .checks import expect, spec
from .core.dedup import DedupOptions, build_vocabulary
from .core.errors import ProposerError
from .metadata import markdown_table
from .sources import stage_asset

ASSET = "property_vocabulary"


class VocabularyConfig(dg.Config):
    merge_threshold: float = Field(0.85, gt=0.0, le=1.0, description="Cosine similarity at which phrases merge.")
    min_support: int = Field(3, ge=1, description="Keep properties proposed for at least this many documents.")
    max_properties: int = Field(2000, ge=2, description="Keep at most this many, by support.")


@stage_asset(
    code_version="1",
    kinds={"pandas"},
    check_specs=[
        spec(ASSET, "vocabulary_is_deduplicated", "texts unique, no two closer than the merge threshold"),
        spec(ASSET, "support_above_minimum", "every property proposed by >= min_support documents"),
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
    embed = encoder.embedder(encoder.load_base())
    vocabulary = build_vocabulary(train_like, embed, options)
    table = vocabulary.table
    if len(table) < 2:
        raise ProposerError(
            f"dataset '{context.partition_key}': only {len(table)} propert(y/ies) reached min_support "
            f"{config.min_support} (from {vocabulary.n_normalised} distinct proposals); lower min_support or "
            "propose for more documents"
        )
    yield dg.Output(
        table,
        metadata={
            "dagster/row_count": len(table),
            "n_proposals": vocabulary.n_raw,
            "n_distinct_normalised": vocabulary.n_normalised,
            "n_merged_away": vocabulary.n_normalised - len(table) - vocabulary.n_pruned,
            "n_pruned_low_support": vocabulary.n_pruned,
            "preview": markdown_table(table.assign(variants=table["variants"].map(len)), 25),
        },
    )
    vectors = embed(table["text"].tolist())
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)
    nearest = pd.DataFrame({"text": table["text"], "nearest_similarity": similarity.max(axis=1)})
    yield expect(
        "vocabulary_is_deduplicated",
        nearest,
        lambda gxe: [
            gxe.ExpectColumnValuesToBeUnique(column="text"),
            gxe.ExpectColumnValuesToBeBetween(column="nearest_similarity", max_value=config.merge_threshold - 1e-6),
        ],
        max_nearest_similarity=float(nearest["nearest_similarity"].max()),
    )
    yield expect(
        "support_above_minimum",
        table[["property_id", "support"]],
        lambda gxe: [gxe.ExpectColumnValuesToBeBetween(column="support", min_value=config.min_support)],
    )
