"""Stage 5: Linear CorEx latent factors over the property scores."""

import dataclasses
from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import ProposerResource
from resources.storage import read_artifact

from .checks import expect, spec
from .core.artifacts import FactorModel, ScoreMatrix
from .core.content_version import array_version, combine, table_version
from .core.errors import ArtifactError, FactorModelError
from .core.factor_identity import FactorDrift, stabilize_ids, weight_rows
from .core.factor_naming import BY_TOP_PROPERTIES, apply_names, naming_requests
from .core.safe_text import escape_markdown_cell
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
        description="Latent factors; the catalogue's n_factors, else parallel analysis of the training scores "
        "(eigenvalues above those of shuffled scores, at most 100).",
    )
    max_iter: int = Field(1000, ge=10, description="CorEx optimiser iterations per annealing stage.")
    seed: int = Field(0, description="Initialisation seed.")
    device: str = Field("auto", description="cpu, cuda or auto.")


@stage_asset(
    deps=[factor_spec],
    # 5: n_factors from parallel analysis when unset; 4: factors named by the LLM when one is configured;
    # 3: factor ids kept across refits, drift table;
    # 2: checks before storing, content version; 6: oriented factors (a higher score means more of the name)
    code_version="6",
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
    proposer: ProposerResource,
) -> Iterator[object]:
    """Named latent factors (clusters of co-occurring properties), CorEx weights and document factor scores.

    A refit keeps the id of each factor that shares most of its properties with one of the previous
    materialization's factors; the `drift` metadata lists what was kept, changed, new and gone. With an LLM
    proposer each factor is then named by one (cached) call; otherwise, or when a reply is refused, it keeps the
    name of its top properties.
    """
    from .core.factors import FactorOptions, fit_factors  # imports torch: not at code-location load

    dataset = dataset_for(context)
    check_alignment(property_scores, raw_documents, property_vocabulary)
    is_train = (raw_documents["split"] == "train").to_numpy()
    values = np.asarray(property_scores.values)
    options = FactorOptions(
        n_factors=config.n_factors or dataset.n_factors,
        max_iter=config.max_iter,
        seed=config.seed,
        device=config.device,
    )
    fitted = fit_factors(values[is_train], values, property_scores.doc_ids, property_vocabulary, options)
    model, drift = stabilize_ids(previous_factor_model(context), fitted)
    model, naming = name_factors(context, model, raw_documents, dataset.goal, proposer)
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
            "n_factors_rule": str(model.summary.get("n_factors_rule", "requested")),
            **{
                key: model.summary[key]
                for key in ("parallel_analysis_ceiling", "parallel_analysis_capped")
                if key in model.summary
            },
            "total_correlation": float(model.summary["tc"]),
            "converged": bool(model.summary["converged"]),
            "n_iter": int(model.summary["n_iter"]),
            "factors": factors_markdown(model.factors),
            "drift": drift_markdown(drift),
            **drift.counts(),
            **naming,
            "heat_map": _heat_map(model),
        },
    )


def name_factors(
    context: AssetExecutionContext,
    model: FactorModel,
    documents: pd.DataFrame,
    goal: str,
    proposer: ProposerResource,
) -> tuple[FactorModel, dict[str, object]]:
    """`model` with factor names from the proposer's LLM where it gives usable ones (by final factor id), and
    the metadata saying how the factors were named."""
    train = documents[documents["split"] == "train"]
    train_texts = dict(zip(train["doc_id"], train["text"], strict=True))
    requests = naming_requests(model.factors, model.document_scores, train_texts, goal)
    answers = proposer.answer_each(requests) if requests else None
    if answers is None:
        named = dataclasses.replace(model, factors=apply_names(model.factors))
        return named, {"named_by": "top properties", "naming_calls_made": 0, "naming_cached_answers": 0}
    if answers.skipped:
        context.log.warning(f"factors keep their top-property names: {answers.skipped}")
    factors = apply_names(model.factors, answers.replies, answers.failures, named_by=f"llm {answers.model}")
    notes = factors.loc[factors["naming_note"] != "", ["factor_id", "naming_note"]]
    n_llm = int((factors["named_by"] != BY_TOP_PROPERTIES).sum())
    metadata: dict[str, object] = {
        "named_by": "top properties" if answers.skipped else f"llm {answers.model}",
        "naming_calls_made": int(answers.stats["calls_made"]),
        "naming_cached_answers": int(answers.stats["cache_hits"]),
        "names_kept_from_top_properties": len(notes),
    }
    context.log.info(
        f"factor names: {n_llm} from {answers.model}, {len(factors) - n_llm} kept from top properties; "
        f"{metadata['naming_calls_made']} calls, {metadata['naming_cached_answers']} cached answers"
    )
    if answers.skipped:
        metadata["naming_skipped"] = answers.skipped
    if len(notes):
        metadata["naming_notes"] = naming_notes_markdown(notes)
    return dataclasses.replace(model, factors=factors), metadata


def naming_notes_markdown(notes: pd.DataFrame) -> dg.MetadataValue:
    """Why each of these factors keeps its top-property name (the reasons quote the server or the rules)."""
    lines = ["| factor | why it keeps its top-property name |", "|---|---|"]
    for row in notes.itertuples():
        lines.append(f"| {escape_markdown_cell(row.factor_id)} | {escape_markdown_cell(row.naming_note)} |")
    return dg.MetadataValue.md("\n".join(lines))


def previous_factor_model(context: AssetExecutionContext) -> FactorModel | None:
    """The factor model the latest materialization of this partition recorded (its `dagster/uri`), if readable."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1
    ).records
    uri = records[0].asset_materialization.metadata.get("dagster/uri") if records else None
    if uri is None:
        return None
    try:
        previous = read_artifact(str(uri.value))
    except (FileNotFoundError, ArtifactError) as exc:
        context.log.warning(f"previous latent_factors unreadable, factor ids start afresh: {exc}")
        return None
    return previous if isinstance(previous, FactorModel) else None


def drift_markdown(drift: FactorDrift, max_rows: int = 30, max_properties: int = 3) -> dg.MetadataValue:
    """Each factor's fate since the previous materialization, with the overlap of its properties."""
    if drift.first_fit:
        lead = "First fit of this dataset: no previous materialization to compare with, every factor is new."
    else:
        counts = drift.counts()
        lead = ", ".join(f"{counts[f'n_{s}']} {s}" for s in ("kept", "changed", "new", "gone")) + " since the last fit."
    lines = [
        lead,
        "",
        "| factor | status | overlap | compared with | previous top properties | top properties |",
        "|---|---|---|---|---|---|",
    ]
    for row in drift.table.head(max_rows).itertuples():
        before, after = (
            ", ".join(escape_markdown_cell(t, max_chars=60) for t in list(texts)[:max_properties])
            for texts in (row.previous_top_properties, row.top_properties)
        )
        cells = [
            escape_markdown_cell(row.factor_id),
            row.status,
            f"{row.overlap:.2f}",
            escape_markdown_cell(row.compared_with),
        ]
        lines.append(f"| {' | '.join(cells)} | {before or '-'} | {after or '-'} |")
    return dg.MetadataValue.md("\n".join(lines))


def check_alignment(scores: ScoreMatrix, documents: pd.DataFrame, vocabulary: pd.DataFrame) -> None:
    """Rows are documents and columns properties by position: refuse a matrix made for other inputs."""
    if not np.array_equal(np.asarray(scores.doc_ids), documents["doc_id"].to_numpy()) or not np.array_equal(
        np.asarray(scores.property_ids), vocabulary["property_id"].to_numpy()
    ):
        raise FactorModelError(
            "the stored property scores were made for other documents or another vocabulary than the stored "
            "raw_documents / property_vocabulary; re-materialize property_scores (`instructlf run DATASET`)"
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
    rows = weight_rows(model)
    order = [rows[factor_id] for factor_id in model.factors["factor_id"]]
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
