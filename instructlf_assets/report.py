"""The report a user reads after a run: factors and metrics, from the stored artifacts of the latest run."""

from __future__ import annotations

import math

import dagster as dg

from .core.artifacts import FactorModel
from .core.evaluation import metric_key


def build_report(instance: dg.DagsterInstance, partition_key: str) -> dict[str, object] | None:
    from definitions import defs

    try:
        factors: FactorModel = defs.load_asset_value("latent_factors", partition_key=partition_key, instance=instance)
    except FileNotFoundError:
        return None
    try:
        metrics_table = defs.load_asset_value("downstream_evaluation", partition_key=partition_key, instance=instance)
    except FileNotFoundError:
        metrics_table = None
    metrics: dict[str, float] = {}
    if metrics_table is not None:
        metrics = {metric_key(row): _number(row["value"]) for _, row in metrics_table.iterrows()}
    return {
        "dataset": partition_key,
        "summary": {k: v for k, v in factors.summary.items() if k != "note"},
        "factors": [
            {
                "factor_id": row.factor_id,
                "name": row.name,
                "properties": list(row.top_properties),
                "weights": [round(float(w), 4) for w in row.top_weights],
                "n_properties": int(row.n_properties),
                "tc_share": round(float(row.tc_share), 4),
            }
            for row in factors.factors.itertuples()
        ],
        "metrics": metrics,
    }


def _number(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def format_report(report: dict[str, object]) -> str:
    lines = [f"dataset {report['dataset']}: {len(report['factors'])} factors"]  # type: ignore[arg-type]
    for factor in report["factors"]:  # type: ignore[attr-defined]
        props = "; ".join(factor["properties"][:5])
        lines.append(f"  {factor['factor_id']} [{factor['tc_share']:.0%}] {factor['name']}\n      {props}")
    lines.append("metrics:")
    for key, value in report["metrics"].items():  # type: ignore[attr-defined]
        lines.append(f"  {key:<42} {'n/a' if value is None else f'{value:.4f}'}")
    return "\n".join(lines)
