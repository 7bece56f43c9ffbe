"""Stage 0: the corpus as a validated table."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from .checks import expect, spec
from .core.catalogue import DatasetSpec, data_dir
from .core.content_version import table_version
from .core.corpus import CorpusLoad, load_documents
from .core.settings import stage_settings
from .metadata import markdown_table
from .partitions import dataset_for
from .publishing import publish
from .sources import corpus_file, stage_asset

ASSET = "raw_documents"
MIN_TRAIN_DOCUMENTS = 10
MIN_DISTINCT_TRAIN_TEXTS = 2


@stage_asset(
    deps=[corpus_file],
    code_version="5",  # 2: checks before storing; content data version; 3: task-free split check; 4: split_group;
    # 5: long texts cut between words
    kinds={"pandas"},
    check_specs=[
        spec(
            ASSET,
            "splits_are_usable",
            f"train has >= {MIN_TRAIN_DOCUMENTS} documents and >= {MIN_DISTINCT_TRAIN_TEXTS} distinct texts "
            "(what the task needs of the other splits is checked by downstream_evaluation, which reads the task)",
        ),
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
    yield from publish(
        context,
        documents,
        version=table_version(documents),
        checks=document_checks(dataset, loaded),
        settings=stage_settings(dataset, ASSET),
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


def document_checks(dataset: DatasetSpec, loaded: CorpusLoad) -> list[dg.AssetCheckResult]:
    documents = loaded.documents
    train_texts = documents.loc[documents["split"] == "train", "text"]
    usable = pd.DataFrame(
        {
            "what": ["split train", "distinct train texts"],
            "have": [len(train_texts), int(train_texts.nunique())],
            "need": [MIN_TRAIN_DOCUMENTS, MIN_DISTINCT_TRAIN_TEXTS],
        }
    )
    short = usable[usable["have"] < usable["need"]]
    explain = "; ".join(f"{r.what} has {r.have} (needs >= {r.need})" for r in short.itertuples())
    if len(short):
        explain += (
            f"; add documents to dataset '{dataset.name}', or change split.valid_fraction / split.test_fraction "
            f"in its catalogue entry"
        )
    repairs = pd.DataFrame({"n_truncated": [loaded.n_truncated], "n_nul_removed": [loaded.n_nul_removed]})
    return [
        expect(
            "splits_are_usable",
            usable,
            lambda gxe: [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="have", column_B="need", or_equal=True)],
            explain=explain,
        ),
        # Repairs keep the run going (documented in the README); the warning makes them visible in the UI.
        expect(
            "loaded_without_repairs",
            repairs,
            lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="n_truncated", max_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="n_nul_removed", max_value=0),
            ],
            severity=dg.AssetCheckSeverity.WARN,
            explain=f"{loaded.n_truncated} text(s) cut to max_text_chars {dataset.max_text_chars}, "
            f"{loaded.n_nul_removed} cleaned of NUL characters",
            max_text_chars=dataset.max_text_chars,
        ),
    ]
