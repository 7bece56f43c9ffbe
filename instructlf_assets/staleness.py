"""'Materialize stale and missing' for one dataset partition, as the UI's button does, from code.

Dagster exposes stale status only through an internal resolver (`CachingStaleStatusResolver`, the one the UI and
the declarative-automation daemon use); it is wrapped here, in one place, and pinned by `dagster<1.14`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from .assets import OBSERVE_JOB, PIPELINE, PIPELINE_JOB
from .core.errors import RunConfigError
from .partitions import ensure_partition


@dataclass
class MaterializeOutcome:
    materialized: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    run_id: str | None = None


LAUNCHED_BY = "instructlf/launched_by"
PID_TAG = "instructlf/pid"
HOST_TAG = "instructlf/host"


def cli_run_tags() -> dict[str, str]:
    """Who runs this: a later CLI call uses pid and host to tell a live run from one whose process was killed."""
    return {LAUNCHED_BY: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def fail_orphaned_cli_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark CLI runs whose process died (kill -9, OOM, power loss) as failed, so the UI stops showing them running.

    An in-process run cannot report its own death; without this it would stay STARTED forever.
    """
    running = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags={LAUNCHED_BY: "cli"})
    )
    host = socket.gethostname()
    orphaned = [
        run for run in running if run.tags.get(HOST_TAG) == host and not _alive(int(run.tags.get(PID_TAG, "0")))
    ]
    for run in orphaned:
        instance.report_run_failed(run, message=f"the instructlf process (pid {run.tags[PID_TAG]}) died mid-run")
    return [run.run_id for run in orphaned]


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The CLI prints its own one-line outcome; the full event log lives in the instance, readable in the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def _definitions() -> dg.Definitions:
    from definitions import defs

    return defs


def pipeline_job() -> dg.JobDefinition:
    """The pipeline job as `definitions.py` builds it from the environment; what executor workers reconstruct."""
    return _definitions().resolve_job_def(PIPELINE_JOB)


def cli_executor() -> str:
    """The CLI runs in-process unless INSTRUCTLF_EXECUTOR names another executor.

    A single-partition run of a linear graph gains nothing from a process per step and pays an import of torch
    and sentence-transformers in each; a chosen executor (dask, multiprocess, k8s, celery) is honoured as is.
    """
    return os.environ.get("INSTRUCTLF_EXECUTOR", "in_process")


def stale_or_missing(instance: dg.DagsterInstance, defs: dg.Definitions, partition_key: str) -> list[dg.AssetKey]:
    """Pipeline assets that are missing or stale for the partition, plus everything downstream of them.

    Dagster marks only the direct children of a changed input stale; their own children become stale once they
    re-run. Selecting the descendants too gives the whole refresh in one run.
    """
    graph = defs.resolve_asset_graph()
    view = AssetGraphView(
        temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
        instance=instance,
        asset_graph=graph,
    )
    resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)
    selected: list[dg.AssetKey] = []
    for asset in PIPELINE:
        key = asset.key
        status = resolver.get_status(key, partition_key)
        parents_selected = any(parent in selected for parent in graph.get(key).parent_keys)
        if status in (StaleStatus.STALE, StaleStatus.MISSING) or parents_selected:
            selected.append(key)
    return selected


def materialize_partition(
    instance: dg.DagsterInstance,
    partition_key: str,
    force: bool = False,
    announce: Callable[[str], None] = lambda line: None,
    asset_config: dict[str, dict] | None = None,
) -> MaterializeOutcome:
    """Observe the sources, then run what is stale or missing; `asset_config` is Launchpad-style config per asset."""
    defs = _definitions()
    ensure_partition(instance, partition_key)
    for run_id in fail_orphaned_cli_runs(instance):
        announce(f"marked run {run_id} failed: its process died before it finished")
    observed = defs.resolve_job_def(OBSERVE_JOB).execute_in_process(
        run_config=QUIET_LOGS,
        instance=instance,
        partition_key=partition_key,
        raise_on_error=False,
        tags=cli_run_tags(),
    )
    if not observed.success:
        return MaterializeOutcome(error=failure_message(observed))
    keys = [asset.key for asset in PIPELINE] if force else stale_or_missing(instance, defs, partition_key)
    if not keys:
        return MaterializeOutcome()
    announce(f"materializing {', '.join(k.to_user_string() for k in keys)} for partition '{partition_key}'")
    selected = {key.to_user_string() for key in keys}
    ops = {name: value for name, value in (asset_config or {}).items() if name in selected}
    run_config = {**QUIET_LOGS, **({"ops": ops} if ops else {})}
    try:
        if cli_executor() == "in_process":
            return _outcome(
                defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
                    run_config=run_config,
                    instance=instance,
                    partition_key=partition_key,
                    asset_selection=keys,
                    raise_on_error=False,
                    tags=cli_run_tags(),
                )
            )
        # Other executors run steps in other processes or machines, which rebuild the job from `pipeline_job`.
        with dg.execute_job(
            dg.reconstructable(pipeline_job),
            instance,
            run_config=run_config,
            tags={**cli_run_tags(), "dagster/partition": partition_key},
            asset_selection=keys,
            raise_on_error=False,
        ) as result:
            return _outcome(result)
    except dg.DagsterInvalidConfigError as exc:
        problems = "; ".join(error.message for error in exc.errors) or str(exc)
        raise RunConfigError(f"invalid asset config: {problems}") from None


def _outcome(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> MaterializeOutcome:
    materialized = [event.asset_key.to_user_string() for event in result.get_asset_materialization_events()]
    failed_checks = [
        f"check {e.asset_key.to_user_string()}:{e.check_name} failed ({e.severity.value}): {e.description or ''}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    error = None if result.success else failure_message(result, failed_checks)
    return MaterializeOutcome(materialized, error, failed_checks, result.run_id)


def failure_message(
    result: dg.ExecuteInProcessResult | dg.JobExecutionResult, failed_checks: list[str] | None = None
) -> str:
    """The innermost error of the first failed step, without Dagster's wrappers, in one line."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None:
                error = error.cause
            lines = error.message.strip().splitlines() or [error.cls_name or "error"]
            message = _EXCEPTION_PREFIX.sub("", lines[0])
            if "blocking asset check" in message and failed_checks:
                message = "; ".join(failed_checks)
            return f"{message} (step '{event.step_key}')"
    return "the run failed (see the run's logs in the Dagster UI)"


_EXCEPTION_PREFIX = re.compile(r"^[\w.]+(?:Error|Exception): ")
