"""Keeping every dataset fresh without anyone pressing a button.

- `catalogue_sensor` notices a new catalogue entry, adds its partition and requests its first full run.
- `daily_observation` observes every dataset's goal and corpus once a day.
- `stale_refresh_sensor` follows each observation run and materializes what became stale or missing in that
  partition, plus everything downstream of it: the same rule `instructlf run` applies, so a scheduled refresh
  of an unchanged dataset launches nothing, and a changed goal re-runs proposals and below, never the documents.

A schedule cannot decide staleness before the observation it depends on has happened, hence the split into a
schedule (observe) and a run-status sensor (refresh what the observation made stale).
"""

import dagster as dg

from .assets import PIPELINE, SOURCES, observe_job, pipeline_job
from .partitions import dataset_partitions, known_partitions, new_catalogue_entries
from .staleness import LAUNCHED_BY

REFRESH_JOB = "instructlf_refresh"

refresh_job = dg.define_asset_job(
    REFRESH_JOB,
    selection=dg.AssetSelection.assets(*PIPELINE) | dg.AssetSelection.keys(*(s.key for s in SOURCES)),
    partitions_def=dataset_partitions,
    description="Observe a dataset's goal and corpus, then materialize every stage (first run of a new dataset).",
)


@dg.sensor(job=refresh_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def catalogue_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    """Adds a partition for each new catalogue entry and requests its first run."""
    new, invalid = new_catalogue_entries(context.instance)
    for message in invalid.values():
        context.log.warning(message)  # one bad file is reported, and the valid entries still get their runs
    if not new:
        skipped = f"; invalid entries skipped: {', '.join(sorted(invalid))}" if invalid else ""
        return dg.SkipReason(f"no new catalogue entries{skipped}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=name, run_key=f"first-run-{name}", tags={LAUNCHED_BY: "catalogue_sensor"})
            for name in new
        ],
        dynamic_partitions_requests=[dataset_partitions.build_add_request(new)],
    )


@dg.schedule(
    job=observe_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Observe every dataset's goal and corpus daily; stale_refresh_sensor refreshes what changed.",
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
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def stale_refresh_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """After an observation, materialize the partition's stale and missing assets and their descendants."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    if run.tags.get(LAUNCHED_BY) == "cli":
        return dg.SkipReason("the CLI materializes after its own observations")
    if partition is None:
        return dg.SkipReason("observation run without a dataset partition")
    from definitions import defs

    from .staleness import stale_or_missing

    keys = stale_or_missing(context.instance, defs, partition)
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
