"""Stage 0: the corpus as a validated table."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from .checks import expect, spec
from .core.catalogue import data_dir
from .core.corpus import load_documents
from .metadata import markdown_table
from .partitions import dataset_for
from .sources import corpus_file, stage_asset

ASSET = "raw_documents"


@stage_asset(
    deps=[corpus_file],
    code_version="1",
    kinds={"pandas"},
    check_specs=[
        spec(ASSET, "documents_are_well_formed", "ids unique and non-null, text non-empty, at least one row"),
        spec(
            ASSET,
            "loaded_without_repairs",
            "no text had to be truncated to max_text_chars or cleaned of NUL characters",
            blocking=False,
        ),
    ],
)
def raw_documents(context: AssetExecutionContext) -> Iterator[object]:
    """The dataset's documents: doc_id, text, split (train/valid/test) and its label columns."""
    dataset = dataset_for(context)
    loaded = load_documents(dataset, data_dir())
    documents = loaded.documents
    splits = documents["split"].value_counts().to_dict()
    yield dg.Output(
        documents,
        metadata={
            "dagster/row_count": len(documents),
            "source": loaded.source,
            "n_truncated": loaded.n_truncated,
            "n_nul_removed": loaded.n_nul_removed,
            **({"corpus_sha256": loaded.sha256} if loaded.sha256 else {}),
            **{f"n_{split}": int(count) for split, count in splits.items()},
            "mean_words": float(documents["text"].str.split().str.len().mean()),
            "preview": markdown_table(documents.head(5)),
        },
    )
    yield expect(
        "documents_are_well_formed",
        documents,
        lambda gxe: [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="doc_id"),
            gxe.ExpectColumnValuesToBeUnique(column="doc_id"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "valid", "test"]),
        ],
    )
    # Repairs keep the run going (documented in the README); the warning makes them visible in the UI.
    yield expect(
        "loaded_without_repairs",
        pd.DataFrame({"n_truncated": [loaded.n_truncated], "n_nul_removed": [loaded.n_nul_removed]}),
        lambda gxe: [
            gxe.ExpectColumnValuesToBeBetween(column="n_truncated", max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="n_nul_removed", max_value=0),
        ],
        severity=dg.AssetCheckSeverity.WARN,
        max_text_chars=dataset.max_text_chars,
    )
