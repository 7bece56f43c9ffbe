"""Stage 5: Linear CorEx latent factors over the property scores."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from .checks import expect, spec
from .core.artifacts import FactorModel, ScoreMatrix
from .core.content_version import array_version, combine, table_version
from .core.settings import stage_settings
from .metadata import factors_markdown, png_markdown
from .partitions import dataset_for
from .publishing import publish
from .sources import factor_spec, stage_asset

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
    deps=[factor_spec],
    code_version="2",  # 2: checks before storing; content data version; empty factors are reported
    kinds={"pytorch"},
    check_specs=[
        spec(ASSET, "factor_model_is_sound", "no NaN in weights or scores; total correlation > 0"),
        spec(
            ASSET,
            "every_factor_has_properties",
            "no factor was left without a property (else n_factors is larger than the data supports)",
            blocking=False,
        ),
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
    from .core.factors import FactorOptions, fit_factors  # imports torch: not at code-location load

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
    yield from publish(
        context,
        model,
        version=combine(
            array_version(model.weights),
            table_version(model.assignments),
            table_version(model.factors),
            table_version(model.document_scores),
        ),
        checks=factor_checks(model),
        config=config,
        settings=stage_settings(dataset, ASSET),
        metadata={
            "n_factors": int(model.summary["n_factors"]),
            "total_correlation": float(model.summary["tc"]),
            "converged": bool(model.summary["converged"]),
            "n_iter": int(model.summary["n_iter"]),
            "factors": factors_markdown(model.factors),
            "heat_map": _heat_map(model),
        },
    )


def factor_checks(model: FactorModel) -> list[dg.AssetCheckResult]:
    soundness = pd.DataFrame(
        {
            "nan_weights": [int(np.isnan(model.weights).sum())],
            "nan_scores": [int(model.document_scores.drop(columns="doc_id").isna().to_numpy().sum())],
            "total_correlation": [float(model.summary["tc"])],
        }
    )
    sizes = model.factors[["factor_id", "n_properties"]]
    empty = sizes.loc[sizes["n_properties"] == 0, "factor_id"].tolist()
    return [
        expect(
            "factor_model_is_sound",
            soundness,
            lambda gxe: [
                gxe.ExpectColumnValuesToBeBetween(column="nan_weights", max_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="nan_scores", max_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="total_correlation", min_value=0, strict_min=True),
            ],
            explain="CorEx produced NaN or no total correlation: the score matrix carries no shared signal",
        ),
        expect(
            "every_factor_has_properties",
            sizes,
            lambda gxe: [gxe.ExpectColumnValuesToBeBetween(column="n_properties", min_value=1)],
            severity=dg.AssetCheckSeverity.WARN,
            explain=f"{len(empty)} of {len(sizes)} factors have no property ({', '.join(empty[:10])}): lower "
            "n_factors in the catalogue entry",
        ),
        # Not converging within max_iter leaves a usable, slightly suboptimal model: worth a warning, not a stop.
        expect(
            "factor_model_converged",
            pd.DataFrame({"converged": [bool(model.summary["converged"])], "n_iter": [int(model.summary["n_iter"])]}),
            lambda gxe: [gxe.ExpectColumnValuesToBeInSet(column="converged", value_set=[True])],
            severity=dg.AssetCheckSeverity.WARN,
            explain=f"CorEx ran all {int(model.summary['n_iter'])} iterations: raise max_iter in the asset config",
        ),
    ]


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
