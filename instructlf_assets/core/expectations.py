"""Great Expectations 1.x suites run on in-memory frames (dagster-ge only supports GX < 1, so we call GX directly).

GX is imported lazily: it costs seconds, and the code location must load fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

SuiteBuilder = Callable[[Any], list[Any]]


@dataclass
class ValidationOutcome:
    success: bool
    evaluated: int
    failures: list[dict[str, object]] = field(default_factory=list)

    def summary(self) -> str:
        if self.success:
            return f"all {self.evaluated} expectations met"
        return "; ".join(
            f"{f['expectation']}({f.get('column') or ''}): {f.get('unexpected_count', '?')} unexpected, "
            f"e.g. rows {f.get('rows', [])[:5]}"
            for f in self.failures
        )


def validate_frame(frame: pd.DataFrame, build: SuiteBuilder, name: str) -> ValidationOutcome:
    """Run the expectations `build(gxe)` returns against `frame`; failures name the offending row indices."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = gx.ExpectationSuite(name=name)
    for expectation in build(gxe):
        suite.add_expectation(expectation)
    batch = (
        context.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    )
    result = batch.validate(suite, result_format="COMPLETE")
    failures = [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "unexpected_count": r.result.get("unexpected_count", r.result.get("observed_value")),
            "rows": list(r.result.get("unexpected_index_list") or [])[:20],
        }
        for r in result.results
        if not r.success
    ]
    return ValidationOutcome(bool(result.success), int(result.statistics["evaluated_expectations"]), failures)
