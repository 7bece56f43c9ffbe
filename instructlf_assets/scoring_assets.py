"""New documents scored with a dataset's fitted model, one materialization per batch, with lineage to that model.

A batch is a file, `$INSTRUCTLF_DATA_DIR/<dataset>/score_batches/<batch>.{csv,jsonl,parquet}`, and a key of the
`score_batches` dynamic partitions; the asset is partitioned by dataset x batch. Its inputs are the dataset's
latest encoder, vocabulary and factor model (mapped from the dataset dimension), so the materialization records
their data versions and Dagster marks a scored batch stale when the model it used is replaced.
"""

import re
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster import AssetExecutionContext

from resources import EncoderResource

from .core.artifacts import EncoderArtifact, FactorModel
from .core.catalogue import DATA_DIR_ENV, data_dir, get_dataset
from .core.content_version import table_version
from .core.errors import CorpusError
from .core.transform import FORMATS, FittedModel, lists_as_json, read_documents
from .orchestration import latest_materialization
from .partitions import dataset_partitions
from .sources import GROUP

BATCH_PARTITIONS_NAME = "score_batches"
score_batch_partitions = dg.DynamicPartitionsDefinition(name=BATCH_PARTITIONS_NAME)
scored_partitions = dg.MultiPartitionsDefinition({"dataset": dataset_partitions, "batch": score_batch_partitions})
MODEL_INPUTS = ("compatibility_encoder", "property_vocabulary", "latent_factors")
_BATCH_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def batch_file(dataset: str, batch: str) -> Path:
    """The one file a batch key names; refused if the key is not a plain file name or no single file matches."""
    if not _BATCH_NAME.match(batch) or ".." in batch:
        raise CorpusError(f"score batch '{batch}': use letters, digits, '.', '_' and '-' only (it names a file)")
    root = data_dir()
    if root is None:
        raise CorpusError(f"score batch '{batch}': ${DATA_DIR_ENV} is not set; batches are files under it")
    folder = root / dataset / BATCH_PARTITIONS_NAME
    found = [folder / f"{batch}.{fmt}" for fmt in FORMATS if (folder / f"{batch}.{fmt}").is_file()]
    if len(found) != 1:
        names = ", ".join(f"{batch}.{fmt}" for fmt in FORMATS)
        raise CorpusError(
            f"dataset '{dataset}': score batch '{batch}' needs exactly one of {names} in {folder}, found {len(found)}"
        )
    return found[0]


def _model_in(name: str) -> dg.AssetIn:
    return dg.AssetIn(
        key=name, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset")
    )


@dg.asset(
    partitions_def=scored_partitions,
    group_name=GROUP,
    ins={name: _model_in(name) for name in MODEL_INPUTS},
    code_version="1",
    kinds={"pytorch", "pandas"},
)
def scored_documents(
    context: AssetExecutionContext,
    compatibility_encoder: EncoderArtifact,
    property_vocabulary: pd.DataFrame,
    latent_factors: FactorModel,
    encoder: EncoderResource,
) -> dg.Output[pd.DataFrame]:
    """A batch of new documents scored with the dataset's fitted model: factor scores and top properties (JSON)."""
    key = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
    dataset, batch = key["dataset"], key["batch"]
    path = batch_file(dataset, batch)
    documents, digest = read_documents(path, get_dataset(dataset))
    model = FittedModel(
        Path(compatibility_encoder.model_dir),
        property_vocabulary,
        latent_factors,
        dataset=dataset,
        batch_size=encoder.batch_size,
        device=encoder.device,
    )
    scored = lists_as_json(model.transform(documents["text"].tolist(), doc_ids=documents["doc_id"].tolist()))
    used = {name: _made_by(context.instance, name, dataset) for name in MODEL_INPUTS}
    return dg.Output(
        scored,
        data_version=dg.DataVersion(table_version(scored)),
        metadata={
            "dagster/row_count": len(scored),
            "input_file": dg.MetadataValue.path(str(path)),
            "input_sha256": digest,
            "n_factors": len(model.factor_ids),
            "model": dg.MetadataValue.json(used),
        },
    )


def _made_by(instance: dg.DagsterInstance, asset: str, dataset: str) -> dict[str, object]:
    """The run and data version of the dataset's stored `asset`: the version this batch was scored with."""
    record = latest_materialization(instance, asset, dataset)
    if record is None:
        return {}
    tags = record.asset_materialization.tags or {}
    return {"run_id": record.run_id, "data_version": tags.get("dagster/data_version")}
