"""Stage 6: what the factors are good for, side by side with baselines on the same split."""

from collections.abc import Iterator

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from resources import EncoderResource

from .checks import expect, spec
from .core.artifacts import FactorModel, ScoreMatrix
from .core.evaluation import Metric, metrics_table
from .core.tasks import (
    TaskInputs,
    evaluate_classification,
    evaluate_next_action,
    evaluate_planted_factors,
    evaluate_recommendation,
)
from .metadata import markdown_table, png_markdown
from .partitions import dataset_for
from .sources import stage_asset

ASSET = "downstream_evaluation"
COUNT_METRICS = ("tuned_neighbours", "dropped_classes", "classes")  # context for the table, not scores to plot


class EvaluationConfig(dg.Config):
    seed: int = Field(0, description="Seed for probes and any sampling.")


@stage_asset(
    code_version="1",
    kinds={"scikitlearn"},
    check_specs=[
        spec(
            ASSET,
            "factors_beat_majority",
            "factor features beat the popularity/majority baseline",
            blocking=False,
        )
    ],
)
def downstream_evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    raw_documents: pd.DataFrame,
    property_scores: ScoreMatrix,
    latent_factors: FactorModel,
    encoder: EncoderResource,
) -> Iterator[object]:
    """Metrics table (method, metric, split, value, n, stderr, seed) for the dataset's downstream task."""
    dataset = dataset_for(context)
    base = encoder.load_base()
    inputs = TaskInputs(
        raw_documents,
        latent_factors,
        np.asarray(property_scores.values),
        encoder.embedder(base)(raw_documents["text"].tolist()),
    )
    task = dataset.task
    if task.type == "planted_factors":
        metrics = evaluate_planted_factors(inputs, task.target or "recommended", config.seed)
    elif task.type == "recommendation":
        metrics = evaluate_recommendation(inputs, task.target or "movies", task, config.seed)
    elif task.type == "classification":
        metrics = evaluate_classification(inputs, task, config.seed)
    elif task.type == "next_action":
        metrics = evaluate_next_action(inputs, task.target or "action", config.seed)
    else:
        metrics = [
            Metric("factors", "total_correlation", None, float(latent_factors.summary["tc"]), len(raw_documents))
        ]
    table = metrics_table(metrics)
    yield dg.Output(
        table,
        metadata={
            "task": dataset.task.type,
            "metrics": markdown_table(table, 50),
            **{m.key: float(m.value) for m in metrics},
            "metric_bars": _metric_bars(table),
        },
    )
    yield expect(
        "factors_beat_majority",
        _versus_majority(table),
        lambda gxe: [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="factors", column_B="majority")],
        severity=dg.AssetCheckSeverity.WARN,
    )


def _versus_majority(table: pd.DataFrame) -> pd.DataFrame:
    """Factor vs majority (or popularity) value per (metric, split) where both exist (empty: nothing to compare)."""
    pivot = table.pivot_table(index=["metric", "split"], columns="method", values="value", aggfunc="first")
    baseline = next((name for name in ("majority", "popularity") if name in pivot.columns), None)
    if baseline is None or "factors" not in pivot.columns:
        return pd.DataFrame({"factors": pd.Series(dtype=float), "majority": pd.Series(dtype=float)})
    return pivot[["factors", baseline]].dropna().rename(columns={baseline: "majority"}).reset_index()


def _metric_bars(table: pd.DataFrame) -> dg.MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = table.dropna(subset=["split"])
    shown = shown[~shown["metric"].isin(COUNT_METRICS) & (shown["method"] != "data")]
    figure, axis = plt.subplots(figsize=(7, 0.4 * max(len(shown), 2) + 1))
    labels = [f"{r.method} · {r.metric}/{r.split}" for r in shown.itertuples()]
    axis.barh(labels, shown["value"], xerr=shown["stderr"].fillna(0), color="#4c72b0")
    axis.invert_yaxis()
    axis.set_xlabel("value")
    try:
        return png_markdown(figure, "Metrics, factors vs baselines")
    finally:
        plt.close(figure)
