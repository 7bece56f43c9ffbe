"""Sensors and schedule, evaluated with Dagster's testing helpers on a real (temporary) instance."""

import datetime as dt
import shutil

import dagster as dg
import pytest

from definitions import defs
from instructlf_assets.assets import OBSERVE_JOB, PIPELINE
from instructlf_assets.automation import catalogue_sensor, daily_observation, stale_refresh_sensor
from instructlf_assets.partitions import PARTITIONS_NAME
from tests.conftest import TEST_CATALOGUE


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_catalogue_sensor_adds_new_entries_without_starting_runs(instance, monkeypatch):
    monkeypatch.delenv("INSTRUCTLF_AUTOMATION", raising=False)
    result = catalogue_sensor(dg.build_sensor_context(instance=instance))
    assert result.run_requests == []
    [request] = result.dynamic_partitions_requests
    assert sorted(request.partition_keys) == ["demo", "tiny"]
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["demo", "tiny"])
    assert isinstance(catalogue_sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)


def test_with_automation_on_the_catalogue_sensor_requests_first_runs(instance, monkeypatch):
    monkeypatch.setenv("INSTRUCTLF_AUTOMATION", "on")
    result = catalogue_sensor(dg.build_sensor_context(instance=instance))
    assert sorted(r.partition_key for r in result.run_requests) == ["demo", "tiny"]


def test_schedule_and_refresh_sensor_are_off_unless_automation_is_switched_on():
    assert daily_observation.default_status == dg.DefaultScheduleStatus.STOPPED
    assert stale_refresh_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert catalogue_sensor.default_status == dg.DefaultSensorStatus.RUNNING  # adds partitions, runs nothing


def test_daily_observation_observes_every_known_dataset(instance):
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["demo", "tiny"])
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 23, 3))
    requests = daily_observation(context)
    assert sorted(r.partition_key for r in requests) == ["demo", "tiny"]
    assert {r.run_key for r in requests} == {"observe-demo-2026-11-23", "observe-tiny-2026-11-23"}


def observation_context(instance, tags):
    result = defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=instance, partition_key="tiny", tags=tags)
    success = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_SUCCESS)
    return dg.build_run_status_sensor_context(
        sensor_name="stale_refresh_sensor",
        dagster_event=success,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        repository_def=defs.get_repository_def(),
    )


def test_refresh_after_observation_requests_the_stale_and_missing_assets(instance):
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["tiny"])
    request = stale_refresh_sensor(observation_context(instance, {"instructlf/launched_by": "daily_observation"}))
    assert request.partition_key == "tiny"
    assert request.asset_selection == [asset.key for asset in PIPELINE]


def test_refresh_sensor_leaves_cli_observations_to_the_cli(instance):
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["tiny"])
    skipped = stale_refresh_sensor(observation_context(instance, {"instructlf/launched_by": "cli"}))
    assert isinstance(skipped, dg.SkipReason)


def test_an_invalid_catalogue_entry_is_reported_and_valid_ones_still_get_partitions(instance, tmp_path, monkeypatch):
    for entry in TEST_CATALOGUE.glob("*.yaml"):
        shutil.copy(entry, tmp_path / entry.name)
    (tmp_path / "broken.yaml").write_text("goal: Which topics?\ncorpus: {path: ../../etc/passwd}\ncolour: red\n")
    monkeypatch.setenv("INSTRUCTLF_CATALOGUE", str(tmp_path))
    result = catalogue_sensor(dg.build_sensor_context(instance=instance))
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == ["demo", "tiny"]
    instance.add_dynamic_partitions(PARTITIONS_NAME, ["demo", "tiny"])
    skipped = catalogue_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(skipped, dg.SkipReason) and "invalid entries skipped: broken" in skipped.skip_message
