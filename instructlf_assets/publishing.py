"""How a stage hands over its result: checks first, then the output with its content version and provenance.

Checks run on the value in hand, before the IO manager stores anything. A failed blocking check stops the step
there: the previous artifact (if any) stays the stored one, the asset stays stale, and the next plain run
recomputes it. Dagster's in-asset checks would otherwise run after the output is stored and leave the bad value
looking fresh.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import dagster as dg

from .core.errors import CheckFailedError


def publish(
    context: dg.AssetExecutionContext,
    value: object,
    *,
    version: str,
    checks: Sequence[dg.AssetCheckResult],
    metadata: Mapping[str, object],
    config: dg.Config | None = None,
    settings: Mapping[str, object] | None = None,
) -> Iterator[object]:
    """Yield the check results; then the output, unless a blocking (ERROR) check failed."""
    yield from gate(context, checks)
    provenance: dict[str, object] = {"peak_rss_mb": peak_rss_mb()}
    if config is not None:
        provenance["config"] = dg.MetadataValue.json(config.model_dump(mode="json"))
    if settings is not None:
        provenance["settings"] = dg.MetadataValue.json(dict(settings))
    yield dg.Output(value, data_version=dg.DataVersion(version), metadata={**metadata, **provenance})


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (the step's own under the multiprocess executor)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def gate(context: dg.AssetExecutionContext, checks: Sequence[dg.AssetCheckResult]) -> Iterator[object]:
    """Yield the check results; stop the step, before anything is stored, if a blocking (ERROR) one failed."""
    yield from checks
    failed = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    if failed:
        reasons = "; ".join(f"{c.check_name}: {c.description or 'failed'}" for c in failed)
        raise CheckFailedError(
            f"dataset '{context.partition_key}': {context.asset_key.to_user_string()} failed its blocking "
            f"check(s) ({reasons}); nothing was stored, the previous version is kept and the next run recomputes it"
        )
