"""Dagster definitions for instructlf: assets, jobs, schedules, sensors and resources.

The environment is chosen here, never inside an asset.
"""

from __future__ import annotations

import dagster as dg

from instructlf_assets.assets import PIPELINE, SOURCES, observe_job, pipeline_job
from instructlf_assets.automation import JOBS, SCHEDULES, SENSORS
from resources import EncoderResource, InstructLFIOManager, ProposerResource, default_storage_root

defs = dg.Definitions(
    assets=[*SOURCES, *PIPELINE],
    jobs=[pipeline_job, observe_job, *JOBS],
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources={
        "io_manager": InstructLFIOManager(base_dir=default_storage_root()),
        "encoder": EncoderResource(),
        "proposer": ProposerResource(),
    },
)
