"""Stage 6: what the factors are good for, side by side with baselines on the same split."""

import warnings
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd
from dagster import AssetExecutionContext
from pydantic import Field

from .checks import expect, spec
from .core.artifacts import BaselineFeatures, FactorModel, ScoreMatrix
from .core.catalogue import TaskSpec
from .core.content_version import table_version
from .core.evaluation import Metric, metrics_table
from .core.settings import stage_settings
from .metadata import markdown_table, png_markdown
from .partitions import dataset_for
from .publishing import gate, publish
from .sources import stage_asset, task_spec

if TYPE_CHECKING:
    from .core.tasks import TaskInputs

ASSET = "downstream_evaluation"
COUNT_METRICS = ("tuned_neighbours", "dropped_classes", "classes")  # context for the table, not scores to plot


class EvaluationConfig(dg.Config):
    seed: int = Field(0, description="Seed for probes and any sampling.")


@stage_asset(
    deps=[task_spec],
    # 2: held-out Bills probes, checks before storing, content version, warnings; 3: split check;
    # 4: validation scores for every task, LDA with as many topics as factors; 5: baselines read from their asset
    code_version="5",
    kinds={"scikitlearn"},
    check_specs=[
        spec(ASSET, "splits_fit_the_task", "the splits the task tunes and evaluates on are not empty"),
        spec(
            ASSET,
            "factors_beat_majority",
            "factor features beat the popularity/majority baseline on every metric both report",
            blocking=False,
        ),
    ],
)
def downstream_evaluation(
    context: AssetExecutionContext,
    config: EvaluationConfig,
    raw_documents: pd.DataFrame,
    property_scores: ScoreMatrix,
    latent_factors: FactorModel,
    baseline_representations: BaselineFeatures,
) -> Iterator[object]:
    """Metrics table (method, metric, split, value, n, stderr, seed) for the dataset's downstream task."""
    from .core.tasks import TaskInputs  # the protocols import scikit-learn: seconds the code location need not pay

    dataset = dataset_for(context)
    usable = split_check(dataset.name, dataset.task, raw_documents)
    if not usable.passed:
        yield from gate(context, [usable])
    if list(baseline_representations.doc_ids) != raw_documents["doc_id"].tolist():
        raise dg.Failure("baseline_representations rows do not match raw_documents: materialize both together")
    inputs = TaskInputs(
        raw_documents, latent_factors, np.asarray(property_scores.values), baseline_representations.features
    )
    # Warnings raised while fitting probes and baselines (convergence, ill-defined metrics) qualify the numbers
    # they come with, so they are kept beside them instead of scrolling past on a terminal.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = evaluate_task(inputs, dataset.task, float(latent_factors.summary["tc"]), config.seed)
    raised = warning_lines(caught)
    for line in raised:
        context.log.warning(line)
    table = metrics_table(metrics)
    yield from publish(
        context,
        table,
        version=table_version(table),
        checks=[usable, *evaluation_checks(dataset.task.type, table)],
        config=config,
        settings=stage_settings(dataset, ASSET),
        metadata={
            "task": dataset.task.type,
            "metrics": markdown_table(table, 50),
            **{m.key: float(m.value) for m in metrics},
            "metric_bars": _metric_bars(table),
            "warnings": dg.MetadataValue.json(raised),
        },
    )


def evaluate_task(inputs: "TaskInputs", task: TaskSpec, total_correlation: float, seed: int) -> list[Metric]:
    from .core.tasks import (
        evaluate_classification,
        evaluate_next_action,
        evaluate_planted_factors,
        evaluate_recommendation,
    )

    if task.type == "planted_factors":
        return evaluate_planted_factors(inputs, task.target or "recommended", seed)
    if task.type == "recommendation":
        return evaluate_recommendation(inputs, task.target or "movies", task, seed)
    if task.type == "classification":
        return evaluate_classification(inputs, task, seed)
    if task.type == "next_action":
        return evaluate_next_action(inputs, task.target or "action", seed)
    return [Metric("factors", "total_correlation", None, total_correlation, len(inputs.documents))]


def warning_lines(caught: list[warnings.WarningMessage], limit: int = 20) -> list[str]:
    """Distinct warnings with how often each was raised, most frequent first."""
    counts = Counter(f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught)
    return [f"{line} (x{count})" for line, count in counts.most_common(limit)]


def required_splits(task: TaskSpec) -> dict[str, int]:
    """Documents each split needs for the task to mean anything."""
    need: dict[str, int] = {}
    if task.type == "recommendation":
        need["valid"] = 1  # the kNN's N is tuned there
    if task.type in ("planted_factors", "recommendation", "next_action") or (
        task.type == "classification" and not task.cross_validate
    ):
        need["test"] = 1
    return need


def split_check(dataset: str, task: TaskSpec, documents: pd.DataFrame) -> dg.AssetCheckResult:
    counts = documents["split"].value_counts()
    need = required_splits(task)
    frame = pd.DataFrame(
        {"split": list(need), "have": [int(counts.get(s, 0)) for s in need], "need": list(need.values())}
    )
    short = frame[frame["have"] < frame["need"]]
    explain = "; ".join(f"split {r.split} has {r.have} documents (task '{task.type}' needs >= {r.need})" for r in
                        short.itertuples())  # fmt: skip
    if len(short):
        explain += f": raise split.valid_fraction / split.test_fraction in dataset '{dataset}''s catalogue entry"
    return expect(
        "splits_fit_the_task",
        frame,
        lambda gxe: [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="have", column_B="need", or_equal=True)],
        explain=explain,
    )


def evaluation_checks(task_type: str, table: pd.DataFrame) -> list[dg.AssetCheckResult]:
    comparison = _versus_majority(table)
    if task_type == "none":
        explain = ""
    elif comparison.empty:
        explain = f"task '{task_type}' reported no metric for both the factors and a majority/popularity baseline"
    else:
        losing = comparison[comparison["factors"] <= comparison["majority"]]
        explain = "factors do not beat the baseline on " + ", ".join(
            f"{r.metric}/{r.split} ({r.factors:.3f} <= {r.majority:.3f})" for r in losing.itertuples()
        )
    # Nothing to compare is a failure for a task with baselines; a dataset without a task has none to beat.
    build = (
        (lambda gxe: [gxe.ExpectTableRowCountToBeBetween(min_value=1)])
        if task_type != "none" and comparison.empty
        else (lambda gxe: [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="factors", column_B="majority")])
    )
    return [
        expect(
            "factors_beat_majority",
            comparison,
            build,
            severity=dg.AssetCheckSeverity.WARN,
            explain=explain,
            n_compared=len(comparison),
        )
    ]


def _versus_majority(table: pd.DataFrame) -> pd.DataFrame:
    """Factor vs majority (or popularity) value per (metric, split) where both exist (empty: nothing to compare)."""
    shown = table[~table["metric"].isin(COUNT_METRICS)]
    pivot = shown.pivot_table(index=["metric", "split"], columns="method", values="value", aggfunc="first")
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
