"""The report a user reads after a run: factors, metrics, and how they were made, from the stored artifacts.

Every number comes with its provenance: the goal, proposer and model, each stage's run, time, code version and
config, and whether anything upstream has changed since (then the numbers are stale, and the report says so).
"""

from __future__ import annotations

import datetime as dt
import math
from importlib import metadata

import dagster as dg
import pandas as pd

from .assets import PIPELINE
from .core.artifacts import FactorModel
from .core.evaluation import metric_key
from .core.safe_text import safe_terminal_text
from .orchestration import latest_materialization, non_default_fields
from .staleness import selection_with_reasons


def build_report(instance: dg.DagsterInstance, defs: dg.Definitions, partition_key: str) -> dict[str, object] | None:
    """Factors, metrics and provenance of the partition's latest materializations (None: never materialized)."""
    try:
        factors: FactorModel = defs.load_asset_value("latent_factors", partition_key=partition_key, instance=instance)
    except FileNotFoundError:
        return None
    try:
        metrics_table = defs.load_asset_value("downstream_evaluation", partition_key=partition_key, instance=instance)
    except FileNotFoundError:
        metrics_table = None
    made = provenance(instance, defs, partition_key)
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    if metrics_table is not None:
        for _, row in metrics_table.iterrows():
            key = metric_key(row)
            metrics[key] = _number(row["value"])
            if pd.notna(row["stderr"]):
                stderr[key] = float(row["stderr"])
    return {
        "dataset": partition_key,
        "summary": {k: v for k, v in factors.summary.items() if k != "note"},
        "factors": [
            {
                "factor_id": row.factor_id,
                "name": row.name,
                # Factor models stored before LLM naming have neither column: their name is the top-property one.
                "top_property_name": getattr(row, "top_property_name", row.name),
                "named_by": getattr(row, "named_by", "top properties"),
                "properties": list(row.top_properties),
                "weights": [round(float(w), 4) for w in row.top_weights],
                "n_properties": int(row.n_properties),
                "tc_share": round(float(row.tc_share), 4),
            }
            for row in factors.factors.itertuples()
        ],
        "metrics": metrics,
        "stderr": stderr,
        "headline": headline(metrics, task_type(made)),
        "provenance": made,
    }


def task_type(made: dict[str, object]) -> str | None:
    settings = made["stages"].get("downstream_evaluation", {}).get("settings") or {}  # type: ignore[attr-defined]
    return (settings.get("task") or {}).get("type")


def provenance(instance: dg.DagsterInstance, defs: dg.Definitions, partition_key: str) -> dict[str, object]:
    """Who made each stage's stored version, when, with which code and config; and what is stale now."""
    stages: dict[str, dict[str, object]] = {}
    for asset in PIPELINE:
        name = asset.key.to_user_string()
        record = latest_materialization(instance, name, partition_key)
        if record is None:
            continue
        materialization = record.asset_materialization
        tags = materialization.tags or {}
        stored = materialization.metadata
        stages[name] = {
            "run_id": record.run_id,
            "materialized_at": dt.datetime.fromtimestamp(record.timestamp, dt.UTC).isoformat(timespec="seconds"),
            "code_version": tags.get("dagster/code_version"),
            "data_version": tags.get("dagster/data_version"),
            "config": _data(stored.get("config")),
            "settings": _data(stored.get("settings")),
        }
    proposals = stages.get("property_proposals", {})
    proposal_settings = proposals.get("settings") or {}
    evaluation = latest_materialization(instance, "downstream_evaluation", partition_key)
    outdated = selection_with_reasons(instance, defs.resolve_asset_graph(), partition_key)
    stale = {key.to_user_string(): reason for key, reason in outdated}
    return {
        "goal": proposal_settings.get("goal"),
        "proposer": proposal_settings.get("proposer"),
        "base_encoder": proposal_settings.get("base_encoder"),
        "instructlf_version": metadata.version("instructlf"),
        "stages": stages,
        "stale": stale,
        "up_to_date": not stale and len(stages) == len(PIPELINE),
        "evaluation_warnings": _data(evaluation.asset_materialization.metadata.get("warnings")) if evaluation else [],
    }


def _data(value: object) -> object:
    return getattr(value, "data", value)


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def non_default_config(stages: dict[str, dict]) -> dict[str, dict]:
    """Per stage, the config fields that differ from the stage's defaults."""
    changed = {name: non_default_fields(name, stage.get("config")) for name, stage in stages.items()}
    return {name: diff for name, diff in changed.items() if diff}


# The metric each task is judged by, and the methods that are baselines (not Instruct-LF's own outputs).
HEADLINE_METRICS = {
    "planted_factors": "auc/test",
    "recommendation": "hit@20/test",
    "classification": "tree_balanced_accuracy/",
    "next_action": "accuracy/valid_seen",
}
BASELINES = ("embeddings", "tfidf", "lda", "popularity", "majority")


def headline(metrics: dict[str, float | None], task_type: str | None) -> dict[str, object] | None:
    """The task's headline metric: the factors' value beside the best baseline's, on the same split."""
    prefix = HEADLINE_METRICS.get(task_type or "")
    if prefix is None:
        return None
    keys = sorted(k.split("/", 1)[1] for k in metrics if k.startswith(f"factors/{prefix}"))
    if not keys:
        return None
    metric = keys[0]
    baselines = {m: metrics.get(f"{m}/{metric}") for m in BASELINES}
    baselines = {m: v for m, v in baselines.items() if v is not None}
    best = max(baselines, key=lambda m: baselines[m]) if baselines else None
    factors = metrics[f"factors/{metric}"]
    return {
        "metric": metric,
        "factors": factors,
        "best_baseline": best,
        "best_baseline_value": baselines.get(best) if best else None,
        "factors_beat_best_baseline": bool(best and factors is not None and factors > baselines[best]),
    }


def format_report(report: dict[str, object]) -> str:
    """The text report. Factor names and properties come from documents and models: printed as inert text."""
    lines = [f"dataset {report['dataset']}: {len(report['factors'])} factors"]  # type: ignore[arg-type]
    lines += _provenance_lines(report["provenance"])  # type: ignore[arg-type]
    lines.append(
        "factors ([share of the total correlation they explain] name, then top properties with their weights; "
        "a higher factor score means more of the positively weighted ones):"
    )
    for factor in report["factors"]:  # type: ignore[attr-defined]
        shown = zip(factor["properties"][:5], factor["weights"][:5], strict=False)
        props = "; ".join(f"{safe_terminal_text(p)} ({w:+.2f})" for p, w in shown)
        lines.append(f"  {factor['factor_id']} [{factor['tc_share']:.0%}] {safe_terminal_text(factor['name'])}")
        lines.append(f"      {props}")
    best = report.get("headline")
    if best:
        verdict = "beat" if best["factors_beat_best_baseline"] else "do not beat"  # type: ignore[index]
        lines.append(
            f"headline {best['metric']}: factors {best['factors']:.4f}, best baseline "  # type: ignore[index]
            f"{best['best_baseline']} {best['best_baseline_value']:.4f}: the factors {verdict} it"  # type: ignore[index]
        )
    lines.append("metrics (METHOD/METRIC/SPLIT; property_scores = Instruct-LF without CorEx):")
    for key, value in report["metrics"].items():  # type: ignore[attr-defined]
        lines.append(f"  {key:<42} {'n/a' if value is None else f'{value:.4f}'}")
    return "\n".join(lines)


def _provenance_lines(made: dict[str, object]) -> list[str]:
    stages: dict[str, dict] = made["stages"]  # type: ignore[assignment]
    proposer = made.get("proposer") or {}
    who = ", ".join(f"{k} {v}" for k, v in proposer.items() if v)  # type: ignore[union-attr]
    evaluation = stages.get("downstream_evaluation", {})
    lines = [
        f"goal: {safe_terminal_text(made.get('goal') or '?')}",
        f"proposer: {who or '?'}; base encoder: {made.get('base_encoder') or '?'}",
        f"made by run {evaluation.get('run_id', '?')} at {evaluation.get('materialized_at', '?')}"
        f" (instructlf {made['instructlf_version']}; stage code versions "
        + ", ".join(f"{name} {stage.get('code_version')}" for name, stage in stages.items())
        + ")",
    ]
    for name, diff in non_default_config(stages).items():
        lines.append(f"config: {name} " + ", ".join(f"{k}={v}" for k, v in diff.items()))
    stale: dict[str, str] = made["stale"]  # type: ignore[assignment]
    for name, reason in stale.items():
        lines.append(f"OUTDATED: {name} ({reason}); `instructlf run` refreshes it")
    for warning in made.get("evaluation_warnings") or []:  # type: ignore[union-attr]
        lines.append(f"evaluation warning: {warning}")
    return lines
