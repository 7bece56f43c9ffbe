"""Stage 5: Linear CorEx latent factors over the property scores."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from .checks import expect, spec
from .core.artifacts import FactorModel, ScoreMatrix
from .core.factors import FactorOptions, fit_factors
from .metadata import factors_markdown, png_markdown
from .partitions import dataset_for
from .sources import stage_asset

ASSET = "latent_factors"


class FactorConfig(dg.Config):
    n_factors: int | None = Field(
        None,
        ge=2,
        description="Latent factors; the catalogue's n_factors, else about one per ten properties.",
    )
    max_iter: int = Field(1000, ge=10, description="CorEx optimiser iterations per annealing stage.")
    seed: int = Field(0, description="Initialisation seed.")
    device: str = Field("auto", description="cpu, cuda or auto.")


@stage_asset(
    code_version="1",
    kinds={"pytorch"},
    check_specs=[
        spec(ASSET, "every_property_assigned_once", "each vocabulary property belongs to exactly one factor"),
        spec(ASSET, "factor_model_is_sound", "no NaN in weights or scores; total correlation > 0"),
        spec(ASSET, "factor_model_converged", "CorEx stopped improving before max_iter", blocking=False),
    ],
)
def latent_factors(
    context: AssetExecutionContext,
    config: FactorConfig,
    raw_documents: pd.DataFrame,
    property_vocabulary: pd.DataFrame,
    property_scores: ScoreMatrix,
) -> Iterator[object]:
    """Named latent factors (clusters of co-occurring properties), CorEx weights and document factor scores."""
    dataset = dataset_for(context)
    is_train = (raw_documents["split"] == "train").to_numpy()
    values = np.asarray(property_scores.values)
    options = FactorOptions(
        n_factors=config.n_factors or dataset.n_factors,
        max_iter=config.max_iter,
        seed=config.seed,
        device=config.device,
    )
    model = fit_factors(values[is_train], values, property_scores.doc_ids, property_vocabulary, options)
    if model.summary["note"]:
        context.log.warning(str(model.summary["note"]))
    yield dg.Output(
        model,
        metadata={
            "n_factors": int(model.summary["n_factors"]),
            "total_correlation": float(model.summary["tc"]),
            "converged": bool(model.summary["converged"]),
            "n_iter": int(model.summary["n_iter"]),
            "factors": factors_markdown(model.factors),
            "heat_map": _heat_map(model),
        },
    )
    yield expect(
        "every_property_assigned_once",
        model.assignments.assign(expected=model.assignments["property_id"].isin(property_vocabulary["property_id"])),
        lambda gxe: [
            gxe.ExpectTableRowCountToEqual(value=len(property_vocabulary)),
            gxe.ExpectColumnValuesToBeUnique(column="property_id"),
            gxe.ExpectColumnValuesToNotBeNull(column="factor_id"),
            gxe.ExpectColumnValuesToBeInSet(column="expected", value_set=[True]),
        ],
    )
    soundness = pd.DataFrame(
        {
            "nan_weights": [int(np.isnan(model.weights).sum())],
            "nan_scores": [int(model.document_scores.drop(columns="doc_id").isna().to_numpy().sum())],
            "total_correlation": [float(model.summary["tc"])],
        }
    )
    yield expect(
        "factor_model_is_sound",
        soundness,
        lambda gxe: [
            gxe.ExpectColumnValuesToBeBetween(column="nan_weights", max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="nan_scores", max_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="total_correlation", min_value=0, strict_min=True),
        ],
    )
    # Not converging within max_iter leaves a usable, slightly suboptimal model: worth a warning, not a stop.
    yield expect(
        "factor_model_converged",
        pd.DataFrame({"converged": [bool(model.summary["converged"])], "n_iter": [int(model.summary["n_iter"])]}),
        lambda gxe: [gxe.ExpectColumnValuesToBeInSet(column="converged", value_set=[True])],
        severity=dg.AssetCheckSeverity.WARN,
    )


def _heat_map(model: FactorModel, max_properties_per_factor: int = 4) -> dg.MetadataValue:
    """Factor x property weights for each factor's top properties: block structure means clean factors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = model.assignments.reset_index(names="column")
    columns: list[int] = []
    labels: list[str] = []
    for factor_id in model.factors["factor_id"]:
        top = ranked[ranked["factor_id"] == factor_id].nlargest(max_properties_per_factor, "mutual_information")
        columns.extend(top["column"].tolist())
        labels.extend(top["text"].tolist())
    order = [int(factor_id[1:]) for factor_id in model.factors["factor_id"]]
    weights = model.weights[np.ix_(order, columns)]
    figure, axis = plt.subplots(figsize=(min(2 + 0.35 * len(columns), 18), 1 + 0.35 * len(order)))
    limit = float(np.abs(weights).max()) or 1.0
    image = axis.imshow(weights, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_yticks(range(len(order)), model.factors["factor_id"])
    axis.set_xticks(range(len(columns)), [t[:28] for t in labels], rotation=70, ha="right", fontsize=7)
    figure.colorbar(image, ax=axis, label="CorEx weight")
    try:
        return png_markdown(figure, "Factor x property weights")
    finally:
        plt.close(figure)
