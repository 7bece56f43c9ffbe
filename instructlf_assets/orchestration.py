"""The CLI's runs: observe a dataset's inputs, decide what must run and why, then run it as a Dagster run.

`instructlf run` never goes around Dagster: the observation and the pipeline are runs of the `observe_sources` and
`instructlf_pipeline` jobs on the instance the UI reads. What runs is what is missing or stale (`staleness.py`)
plus the stages whose `--config` differs from the config recorded on their latest materialization, and
everything downstream of those. Config is never silently dropped: it either re-runs the stage it changes, is
already what made the stored version (said so), or is refused with the reason.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dagster as dg
from pydantic import ValidationError

from .assets import OBSERVE_JOB, PIPELINE, PIPELINE_JOB, STAGE_CONFIGS
from .core.errors import InstructLFError, RunConfigError
from .partitions import ensure_partition
from .run_tags import HOST_TAG, LAUNCHED_BY, PID_TAG, cli_run_tags
from .staleness import selection_with_reasons

# The CLI prints its own one-line outcome; the full event log lives in the instance, readable in the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class RunPlan:
    """What a run of one partition would do: each stage to run with the reason, and the config it gets."""

    partition: str
    stages: list[tuple[str, str]] = field(default_factory=list)
    ops: dict[str, dict] = field(default_factory=dict)
    config_already_applied: list[str] = field(default_factory=list)
    config_reset: dict[str, dict] = field(default_factory=dict)  # stage -> non-default config it was made with

    @property
    def stage_names(self) -> list[str]:
        return [name for name, _ in self.stages]


@dataclass
class MaterializeOutcome:
    materialized: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    run_id: str | None = None
    plan: RunPlan | None = None


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


def effective_config(ops: Mapping[str, object]) -> dict[str, dict]:
    """Each named stage's full config (defaults filled in), validated; unknown stages and fields are refused."""
    known = ", ".join(STAGE_CONFIGS)
    resolved: dict[str, dict] = {}
    for name, entry in ops.items():
        if name not in STAGE_CONFIGS:
            where = "takes no config" if name in {a.key.to_user_string() for a in PIPELINE} else "is not a stage"
            raise RunConfigError(f"invalid asset config: --config names '{name}', which {where} (stages: {known})")
        if not isinstance(entry, Mapping) or set(entry) - {"config"}:
            raise RunConfigError(f"invalid asset config: ops.{name} must be a mapping with one key 'config'")
        given = entry.get("config") or {}
        unknown = sorted(set(given) - set(STAGE_CONFIGS[name].model_fields))
        if unknown:  # dg.Config ignores unknown fields; here a typo must not vanish silently
            fields = ", ".join(STAGE_CONFIGS[name].model_fields)
            raise RunConfigError(f"invalid asset config: ops.{name}.config has no field {unknown} (fields: {fields})")
        try:
            resolved[name] = STAGE_CONFIGS[name](**given).model_dump(mode="json")
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise RunConfigError(f"invalid asset config: ops.{name}.config: {problems}") from None
    return resolved


def recorded_config(instance: dg.DagsterInstance, asset: str, partition_key: str) -> dict | None:
    """The config that made the stored version of `asset` (None: never materialized, or before it was recorded)."""
    record = latest_materialization(instance, asset, partition_key)
    if record is None:
        return None
    value = record.asset_materialization.metadata.get("config")
    return getattr(value, "data", None) if value is not None else None


def latest_materialization(instance: dg.DagsterInstance, asset: str, partition_key: str):
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition_key]), limit=1
    )
    return result.records[0] if result.records else None


def observe(instance: dg.DagsterInstance, defs: dg.Definitions, partition_key: str) -> str | None:
    """Observe the partition's corpus and settings; the error line when observation failed."""
    observed = defs.resolve_job_def(OBSERVE_JOB).execute_in_process(
        run_config=QUIET_LOGS, instance=instance, partition_key=partition_key, raise_on_error=False,
        tags=cli_run_tags(),
    )  # fmt: skip
    return None if observed.success else failure_message(observed)


def plan_partition(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    partition_key: str,
    force: bool = False,
    asset_config: Mapping[str, object] | None = None,
) -> RunPlan:
    """Which stages a run would materialize and why; call after `observe`, so the versions are current."""
    wanted = effective_config(asset_config or {})
    changed = {name for name, config in wanted.items() if recorded_config(instance, name, partition_key) != config}
    if force:
        stages = [(asset.key.to_user_string(), "--all") for asset in PIPELINE]
    else:
        also = frozenset(dg.AssetKey(name) for name in changed)
        graph = defs.resolve_asset_graph()
        stages = [(k.to_user_string(), why) for k, why in selection_with_reasons(instance, graph, partition_key, also)]
    selected = {name for name, _ in stages}
    return RunPlan(
        partition=partition_key,
        stages=stages,
        ops={name: {"config": config} for name, config in wanted.items() if name in selected},
        config_already_applied=sorted(set(wanted) - changed - selected),
        config_reset={
            name: diff
            for name in sorted(selected - set(wanted))
            if (diff := non_default_fields(name, recorded_config(instance, name, partition_key)))
        },
    )


def non_default_fields(stage: str, config: dict | None) -> dict:
    """The fields of a stage's recorded config that differ from its defaults (empty when it has none)."""
    if stage not in STAGE_CONFIGS or not config:
        return {}
    defaults = STAGE_CONFIGS[stage]().model_dump(mode="json")
    return {key: value for key, value in config.items() if defaults.get(key) != value}


def materialize_partition(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    partition_key: str,
    force: bool = False,
    announce: Callable[[str], None] = lambda line: None,
    asset_config: Mapping[str, object] | None = None,
    reconstructable_job: Callable[[], object] | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> MaterializeOutcome:
    """Observe the inputs, then run what is stale, missing or reconfigured (everything with `force`).

    `reconstructable_job`: the pipeline job as executors in other processes rebuild it; needed unless the CLI
    runs in-process (INSTRUCTLF_EXECUTOR unset or `in_process`).
    """
    effective_config(asset_config or {})  # refuse bad config before anything runs
    ensure_partition(instance, partition_key)
    for run_id in fail_orphaned_cli_runs(instance):
        announce(f"marked run {run_id} failed: its process died before it finished")
    error = observe(instance, defs, partition_key)
    if error:
        return MaterializeOutcome(error=error)
    plan = plan_partition(instance, defs, partition_key, force, asset_config)
    for name in plan.config_already_applied:
        announce(f"--config for {name} is the config its stored version was made with; it does not re-run")
    for name, diff in plan.config_reset.items():
        announce(f"{name} was last made with {diff}; this run uses its defaults (give the same --config to keep it)")
    if not plan.stages:
        return MaterializeOutcome(plan=plan)
    announce(f"materializing {', '.join(plan.stage_names)} for partition '{partition_key}'")
    run_config = {**QUIET_LOGS, **({"ops": plan.ops} if plan.ops else {})}
    keys = [dg.AssetKey(name) for name in plan.stage_names]
    if cli_executor() == "in_process":
        result = execute_with_progress(
            lambda run_id: defs.resolve_job_def(PIPELINE_JOB).execute_in_process(
                run_config=run_config, instance=instance, partition_key=partition_key, asset_selection=keys,
                raise_on_error=False, tags=cli_run_tags(), run_id=run_id,
            ),
            instance,
            progress,
        )  # fmt: skip
        return _outcome(result, plan)
    if reconstructable_job is None:
        raise RunConfigError(f"INSTRUCTLF_EXECUTOR={cli_executor()} needs the reconstructable pipeline job")
    with dg.execute_job(
        dg.reconstructable(reconstructable_job),
        instance,
        run_config=run_config,
        tags={**cli_run_tags(), "dagster/partition": partition_key},
        asset_selection=keys,
        raise_on_error=False,
    ) as result:
        return _outcome(result, plan)


def execute_with_progress(
    execute: Callable[[str], dg.ExecuteInProcessResult],
    instance: dg.DagsterInstance,
    progress: Callable[[str], None],
    poll_s: float = 1.0,
) -> dg.ExecuteInProcessResult:
    """Run `execute(run_id)` and pass on, as they happen, each stage's start, its own INFO lines (what it is
    doing, chunk i of n) and its end with the elapsed time: a long run is never silent for minutes.

    The run keeps the main thread (Dagster's own interrupt handling and log capture expect it); a daemon thread
    reads the run's events. Progress is a courtesy: if reading or printing fails (a locked database, a closed
    pipe), the reader stops and the run goes on untouched.
    """
    run_id = str(uuid.uuid4())
    started = time.monotonic()
    stop = threading.Event()

    def follow() -> None:
        cursor = None
        try:
            while True:
                last = stop.is_set()
                cursor = _report_progress(instance, run_id, cursor, started, progress)
                if last:
                    return
                stop.wait(poll_s)
        except Exception:
            return

    reader = threading.Thread(target=follow, name="instructlf-progress", daemon=True)
    reader.start()
    try:
        return execute(run_id)
    finally:
        stop.set()
        reader.join(timeout=10)


def _report_progress(instance, run_id, cursor, started: float, progress: Callable[[str], None]):
    if not instance.has_run(run_id):
        return cursor
    connection = instance.get_records_for_run(run_id, cursor=cursor)
    for record in connection.records:
        entry = record.event_log_entry
        line = _progress_line(entry)
        if line:
            progress(f"  [{time.monotonic() - started:5.0f} s] {line}")
    return connection.cursor


def _progress_line(entry) -> str | None:
    event = entry.dagster_event
    if event is None:
        message = entry.user_message.strip()
        return f"{entry.step_key}: {message}" if entry.step_key and entry.level >= logging.INFO and message else None
    if event.event_type == dg.DagsterEventType.STEP_START:
        return f"{event.step_key}: started"
    if event.event_type == dg.DagsterEventType.STEP_SUCCESS:
        return f"{event.step_key}: done in {event.event_specific_data.duration_ms / 1000:.0f} s"
    if event.event_type == dg.DagsterEventType.STEP_FAILURE:
        return f"{event.step_key}: failed"
    return None


def cli_executor() -> str:
    """The CLI runs in-process unless INSTRUCTLF_EXECUTOR names another executor.

    A single-partition run of a linear graph gains nothing from a process per step and pays an import of torch
    and sentence-transformers in each; a chosen executor (dask, multiprocess, k8s, celery) is honoured as is.
    """
    return os.environ.get("INSTRUCTLF_EXECUTOR", "in_process")


def _outcome(result: dg.ExecuteInProcessResult | dg.JobExecutionResult, plan: RunPlan) -> MaterializeOutcome:
    materialized = [event.asset_key.to_user_string() for event in result.get_asset_materialization_events()]
    failed_checks = [
        f"check {e.asset_key.to_user_string()}:{e.check_name} failed ({e.severity.value}): {e.description or ''}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    error = None if result.success else failure_message(result)
    return MaterializeOutcome(materialized, error, failed_checks, result.run_id, plan)


def failure_message(result: dg.ExecuteInProcessResult | dg.JobExecutionResult) -> str:
    """The innermost error of the first failed step, without Dagster's wrappers, in one line."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = _our_error(event.step_failure_data.error)
            lines = error.message.strip().splitlines() or [error.cls_name or "error"]
            return f"{_strip_exception_name(lines[0])} (step '{event.step_key}')"
    return "the run failed (see the run's logs in the Dagster UI)"


def _our_error(error):
    """The project's own error in the chain (it names dataset, file and setting), else the innermost cause.

    Dagster wraps a step's exception, and ours may wrap a library's (pandas' "No columns to parse from file"):
    the message a user can act on is ours, wherever it sits.
    """
    ours = {cls.__name__ for cls in _subclasses(InstructLFError)}
    chain = [error]
    while chain[-1].cause is not None:
        chain.append(chain[-1].cause)
    return next((e for e in chain if e.cls_name in ours), chain[-1])


def _subclasses(cls: type) -> list[type]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def _strip_exception_name(line: str) -> str:
    return re.sub(r"^[\w.]+(?:Error|Exception): ", "", line)
