"""Dagster definitions for instructlf: assets, jobs, schedules, sensors and resources.

The environment is chosen here, never inside an asset.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from instructlf_assets.assets import PIPELINE, SOURCES, observe_job, pipeline_job
from instructlf_assets.automation import JOBS, SCHEDULES, SENSORS
from resources import EncoderResource, InstructLFIOManager, ProposerResource, default_storage_root

PROPOSERS = ("offline", "openai", "local")


# Operators tune the LLM client per deployment (a slow local server, a strict rate limit) without run config.
LLM_TUNING_VARIABLES: dict[str, tuple[str, type]] = {
    "INSTRUCTLF_LLM_CONCURRENCY": ("concurrency", int),
    "INSTRUCTLF_LLM_TIMEOUT_S": ("timeout_s", float),
    "INSTRUCTLF_LLM_MAX_RETRIES": ("max_retries", int),
    "INSTRUCTLF_LLM_BACKOFF_S": ("backoff_base_s", float),
}


def proposer_from_environment() -> ProposerResource:
    """The proposer back end from INSTRUCTLF_PROPOSER and the openai client's own variables.

    The key is bound through EnvVar only when it is set: an EnvVar on an unset variable fails every run, even for
    an optional field, and the offline default must work on a fresh machine.
    """
    backend = os.environ.get("INSTRUCTLF_PROPOSER", "offline")
    if backend not in PROPOSERS:
        raise ValueError(f"INSTRUCTLF_PROPOSER is {backend!r}; expected one of {', '.join(PROPOSERS)}")
    settings: dict[str, object] = {
        "backend": backend,
        "cache_dir": str(Path(default_storage_root()) / "llm_cache"),
    }
    if os.environ.get("INSTRUCTLF_LLM_MODEL"):
        settings["model"] = os.environ["INSTRUCTLF_LLM_MODEL"]
    if os.environ.get("OPENAI_BASE_URL"):
        settings["base_url"] = os.environ["OPENAI_BASE_URL"]
    if os.environ.get("OPENAI_API_KEY"):
        settings["api_key"] = dg.EnvVar("OPENAI_API_KEY")
    for variable, (field, kind) in LLM_TUNING_VARIABLES.items():
        if os.environ.get(variable):
            try:
                settings[field] = kind(os.environ[variable])
            except ValueError:
                raise ValueError(f"{variable} is {os.environ[variable]!r}; expected a {kind.__name__}") from None
    return ProposerResource(**settings)


defs = dg.Definitions(
    assets=[*SOURCES, *PIPELINE],
    jobs=[pipeline_job, observe_job, *JOBS],
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources={
        "io_manager": InstructLFIOManager(base_dir=default_storage_root()),
        "encoder": EncoderResource(),
        "proposer": proposer_from_environment(),
    },
)
