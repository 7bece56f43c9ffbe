"""Keeping every dataset fresh, once someone asks for it. Nothing here launches a run by default.

- `catalogue_sensor` (always on) notices a new catalogue entry and adds its partition, without running anything.
- `daily_observation` (03:00) observes every dataset's goal, settings and corpus.
- `stale_refresh_sensor` follows each observation run and materializes what became stale or missing in that
  partition, plus everything downstream of it: the same rule `instructlf run` applies, so a scheduled refresh
  of an unchanged dataset launches nothing, and a changed goal re-runs proposals and below, never the documents.

Opening the UI must not spend an hour of CPU (or an LLM budget), so the schedule and the refresh sensor start
stopped, and the catalogue sensor requests no first runs, unless `INSTRUCTLF_AUTOMATION=on`; either can also be
switched on in the UI. A schedule cannot decide staleness before the observation it depends on has happened,
hence the split into a schedule (observe) and a run-status sensor (refresh what the observation made stale).
"""

from __future__ import annotations

import os

import dagster as dg

from .assets import PIPELINE, SOURCES, observe_job, pipeline_job
from .partitions import dataset_partitions, known_partitions, new_catalogue_entries
from .run_tags import LAUNCHED_BY
from .staleness import stale_or_missing

REFRESH_JOB = "instructlf_refresh"
AUTOMATION_ENV = "INSTRUCTLF_AUTOMATION"


def automation_enabled() -> bool:
    """`INSTRUCTLF_AUTOMATION=on` (or 1/true/yes): refreshes and first runs start by themselves."""
    return os.environ.get(AUTOMATION_ENV, "").strip().lower() in ("on", "1", "true", "yes")


def _default_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation_enabled() else dg.DefaultSensorStatus.STOPPED


refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.assets(*PIPELINE) | dg.AssetSelection.keys(*(s.key for s in SOURCES)),
    partitions_def=dataset_partitions,
    description="Observe a dataset's goal, settings and corpus, then materialize every stage.",
)


@dg.sensor(job=refresh_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def catalogue_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Adds a partition for each new catalogue entry; requests its first run only with INSTRUCTLF_AUTOMATION=on."""
    new, invalid = new_catalogue_entries(context.instance)
    for message in invalid.values():
        context.log.warning(message)  # one bad file is reported, and the valid entries still get their partitions
    if not new:
        skipped = f"; invalid entries skipped: {', '.join(sorted(invalid))}" if invalid else ""
        return dg.SkipReason(f"no new catalogue entries{skipped}")
    requests = (
        [
            dg.RunRequest(partition_key=name, run_key=f"first-run-{name}", tags={LAUNCHED_BY: "catalogue_sensor"})
            for name in new
        ]
        if automation_enabled()
        else []
    )
    return dg.SensorResult(
        run_requests=requests, dynamic_partitions_requests=[dataset_partitions.build_add_request(new)]
    )


@dg.schedule(
    job=observe_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING if automation_enabled() else dg.DefaultScheduleStatus.STOPPED,
    description="Observe every dataset's goal, settings and corpus daily; stale_refresh_sensor refreshes what "
    "changed. Stopped unless INSTRUCTLF_AUTOMATION=on or switched on here.",
)
def daily_observation(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    tick = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [
        dg.RunRequest(partition_key=name, run_key=f"observe-{name}-{tick}", tags={LAUNCHED_BY: "daily_observation"})
        for name in known_partitions(context.instance)
    ]


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[observe_job],
    request_job=pipeline_job,
    default_status=_default_status(),
)
def stale_refresh_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """After an observation, materialize the partition's stale and missing assets and their descendants."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    if run.tags.get(LAUNCHED_BY) == "cli":
        return dg.SkipReason("the CLI materializes after its own observations")
    if partition is None:
        return dg.SkipReason("observation run without a dataset partition")
    keys = stale_or_missing(context.instance, context.repository_def.asset_graph, partition)
    if not keys:
        return dg.SkipReason(f"dataset '{partition}' is up to date")
    return dg.RunRequest(
        partition_key=partition,
        asset_selection=keys,
        run_key=f"refresh-{run.run_id}",
        tags={LAUNCHED_BY: "stale_refresh_sensor"},
    )


SCHEDULES = [daily_observation]
SENSORS = [catalogue_sensor, stale_refresh_sensor]
JOBS = [refresh_job]
