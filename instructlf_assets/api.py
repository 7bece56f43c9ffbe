"""The Python API for notebooks: a dataset's latest fitted model, ready to score new documents.

    from instructlf_assets.api import load_model
    model = load_model("demo")
    model.transform(["The plot dragged but the acting was superb."])

It reads the artifacts the pipeline stored (the same ones `instructlf score` and `instructlf report` read):
through the Dagster instance in $DAGSTER_HOME (default ./.dagster_home, like the CLI), or straight from a
storage root when one is given.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .core.artifacts import EncoderArtifact, FactorModel, ScoreMatrix
from .core.errors import InstructLFError
from .core.transform import DEFAULT_TOP_K, FittedModel, ModelNotReadyError, top_property_columns, write_table

if TYPE_CHECKING:
    import dagster as dg

MODEL_ASSETS = ("compatibility_encoder", "property_vocabulary", "latent_factors")
DEFAULT_HOME = ".dagster_home"


def load_model(
    dataset: str, instance: dg.DagsterInstance | None = None, storage: str | Path | None = None
) -> FittedModel:
    """The dataset's latest materialized encoder, vocabulary and factor model as a `FittedModel`.

    `storage`: an artifact storage root (a path or fsspec URL) to read; else, given `instance`, through the
    project's definitions; else the configured root ($INSTRUCTLF_STORAGE, or `instructlf/` in $DAGSTER_HOME,
    default ./.dagster_home, as the CLI).
    """
    values = load_artifacts(dataset, MODEL_ASSETS, instance, storage)
    encoder: EncoderArtifact = values["compatibility_encoder"]
    factors: FactorModel = values["latent_factors"]
    return FittedModel(Path(encoder.model_dir), values["property_vocabulary"], factors, dataset=dataset)


def load_artifacts(
    dataset: str,
    assets: tuple[str, ...],
    instance: dg.DagsterInstance | None = None,
    storage: str | Path | None = None,
) -> dict[str, object]:
    """Each named asset's stored value for the dataset's partition; a missing one says which run makes it."""
    if storage is None and instance is None:
        from resources.storage import default_storage_root

        os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / DEFAULT_HOME))
        storage = default_storage_root()
    if storage is not None:
        from resources.storage import join_location, read_artifact

        def load(asset: str) -> object:
            return read_artifact(join_location(storage, asset, dataset))
    else:
        from definitions import defs

        def load(asset: str) -> object:
            return defs.load_asset_value(asset, partition_key=dataset, instance=instance)

    values: dict[str, object] = {}
    for asset in assets:
        try:
            values[asset] = load(asset)
        except FileNotFoundError:
            raise ModelNotReadyError(
                f"dataset '{dataset}' has no stored {asset}; run `instructlf run {dataset}` first"
            ) from None
    return values


EXPORTED_ASSETS = ("latent_factors", "property_vocabulary", "property_scores")


def export_dataset(
    dataset: str,
    directory: str | Path,
    instance: dg.DagsterInstance,
    storage: str | Path | None = None,
    top_k: int = DEFAULT_TOP_K,
) -> dict[str, object]:
    """Write the factor table, document factor scores, document top properties and metrics (Parquet and CSV)
    plus `manifest.json` with the provenance `instructlf report` shows; return the manifest."""
    import datetime as dt

    from definitions import defs

    from .report import provenance

    values = load_artifacts(dataset, EXPORTED_ASSETS, instance, storage)
    factors: FactorModel = values["latent_factors"]
    matrix: ScoreMatrix = values["property_scores"]
    tables = {
        "factors": factors.factors,
        "document_factor_scores": factors.document_scores,
        "document_top_properties": top_properties_table(matrix, values["property_vocabulary"], top_k),
    }
    with contextlib.suppress(ModelNotReadyError):  # no evaluation stored yet: the manifest lists what was written
        tables["metrics"] = load_artifacts(dataset, ("downstream_evaluation",), instance, storage)[
            "downstream_evaluation"
        ]
    target = Path(directory)
    files: dict[str, list[str]] = {}
    for name, table in tables.items():
        files[name] = []
        for suffix in (".parquet", ".csv"):
            write_table(table, target / f"{name}{suffix}")
            files[name].append(f"{name}{suffix}")
    manifest = {
        "dataset": dataset,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": files,
        "rows": {name: len(table) for name, table in tables.items()},
        "provenance": provenance(instance, defs, dataset),
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    return manifest


def top_properties_table(matrix: ScoreMatrix, vocabulary: pd.DataFrame, top_k: int) -> pd.DataFrame:
    """Long table: each document's `top_k` highest-scoring properties (`doc_id`, `rank`, `property_id`, ...)."""
    scores = np.asarray(matrix.values)
    texts = vocabulary.set_index("property_id")["text"]
    column_ids = np.asarray(matrix.property_ids)
    missing = sorted(set(column_ids) - set(texts.index))
    if missing:  # a matrix stored from another vocabulary (a stage re-run since): refuse, never mislabel
        raise InstructLFError(
            f"the stored property scores name properties the vocabulary lacks ({missing[:5]}); "
            "re-materialize property_scores"
        )
    order = top_property_columns(scores, top_k)
    rows = np.repeat(np.arange(len(scores)), order.shape[1])
    columns = order.ravel()
    return pd.DataFrame(
        {
            "doc_id": np.asarray(matrix.doc_ids)[rows],
            "rank": np.tile(np.arange(1, order.shape[1] + 1), len(scores)),
            "property_id": column_ids[columns],
            "text": texts.loc[column_ids[columns]].to_numpy(),
            "score": scores[rows, columns].astype(np.float64).round(4),
        }
    )
