"""Dagster definitions for instructlf: assets, jobs and resources, with the environment chosen here, not in assets."""

from __future__ import annotations

import dagster as dg

from instructlf_assets.assets import PIPELINE, SOURCES, observe_job, pipeline_job
from resources import EncoderResource, InstructLFIOManager, ProposerResource, default_storage_root

defs = dg.Definitions(
    assets=[*SOURCES, *PIPELINE],
    jobs=[pipeline_job, observe_job],
    resources={
        "io_manager": InstructLFIOManager(base_dir=default_storage_root()),
        "encoder": EncoderResource(),
        "proposer": ProposerResource(),
    },
)
