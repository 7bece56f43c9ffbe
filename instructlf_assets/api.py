"""The Python API for notebooks: a dataset's latest fitted model, ready to score new documents.

    from instructlf_assets.api import load_model
    model = load_model("demo")
    model.transform(["The plot dragged but the acting was superb."])

It reads the artifacts the pipeline stored (the same ones `instructlf score` and `instructlf report` read):
through the Dagster instance in $DAGSTER_HOME (default ./.dagster_home, like the CLI), or straight from a
storage root when one is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .core.artifacts import EncoderArtifact, FactorModel
from .core.transform import FittedModel, ModelNotReadyError

if TYPE_CHECKING:
    import dagster as dg

MODEL_ASSETS = ("compatibility_encoder", "property_vocabulary", "latent_factors")
DEFAULT_HOME = ".dagster_home"


def load_model(
    dataset: str, instance: dg.DagsterInstance | None = None, storage: str | Path | None = None
) -> FittedModel:
    """The dataset's latest materialized encoder, vocabulary and factor model as a `FittedModel`.

    `storage`: an artifact storage root (a path or fsspec URL) to read directly; otherwise the artifacts are
    loaded through the project's definitions with `instance` (default: the instance in $DAGSTER_HOME).
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
    own = False
    if storage is not None:
        from resources.storage import join_location, read_artifact

        def load(asset: str) -> object:
            return read_artifact(join_location(storage, asset, dataset))
    else:
        import dagster as dg

        os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / DEFAULT_HOME))
        from definitions import defs

        own = instance is None
        instance = instance or dg.DagsterInstance.get()

        def load(asset: str) -> object:
            return defs.load_asset_value(asset, partition_key=dataset, instance=instance)

    values: dict[str, object] = {}
    try:
        for asset in assets:
            try:
                values[asset] = load(asset)
            except FileNotFoundError:
                raise ModelNotReadyError(
                    f"dataset '{dataset}' has no stored {asset}; run `instructlf run {dataset}` first"
                ) from None
    finally:
        if own and instance is not None:
            instance.dispose()
    return values
