"""Turning Great Expectations outcomes into Dagster asset-check results, yielded from inside each asset.

Checks live inside the partitioned assets (not as standalone @asset_check) because a standalone check would load
every partition; inside, they validate exactly the partition being materialized.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from .core.expectations import SuiteBuilder, validate_frame


def spec(asset: str, name: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


def expect(
    name: str,
    frame: pd.DataFrame,
    build: SuiteBuilder,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    explain: str = "",
    **metadata: object,
) -> dg.AssetCheckResult:
    """Validate `frame` with the GX suite `build(gxe)`; `explain` says in the project's words what failed and
    which setting to change, ahead of GX's own summary."""
    outcome = validate_frame(frame, build, name)
    summary = outcome.summary()
    return dg.AssetCheckResult(
        check_name=name,
        passed=bool(outcome.success),
        severity=severity,
        description=f"{explain} ({summary})" if explain and not outcome.success else summary,
        metadata={"evaluated_expectations": outcome.evaluated, "failures": outcome.failures, **metadata},
    )
