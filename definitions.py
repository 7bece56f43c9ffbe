"""Dagster definitions for instructlf: assets, jobs, schedules, sensors and resources.

The environment is chosen here, never inside an asset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import dagster as dg

from instructlf_assets.assets import PIPELINE, PIPELINE_JOB, SOURCES, observe_job, pipeline_job
from instructlf_assets.automation import JOBS, SCHEDULES, SENSORS
from instructlf_assets.scoring_assets import scored_documents
from resources import EncoderResource, InstructLFIOManager, ProposerResource, default_storage_root
from resources.storage import join_location, local_scratch

PROPOSERS = ("offline", "openai", "local")
EXECUTOR_ENV = "INSTRUCTLF_EXECUTOR"
EMBEDDING_CACHE_ENV = "INSTRUCTLF_EMBEDDING_CACHE"
EXECUTORS = ("multiprocess", "in_process", "dask", "k8s", "celery")
# Passed by name to step pods, so a pod sees the storage, catalogue and LLM settings of the run that launched it.
# The API key is not among them: on Kubernetes it comes from a Secret (INSTRUCTLF_K8S_ENV_SECRETS).
FORWARDED_TO_STEPS = (
    "INSTRUCTLF_STORAGE",
    "INSTRUCTLF_CATALOGUE",
    "INSTRUCTLF_DATA_DIR",
    "INSTRUCTLF_PROPOSER",
    "INSTRUCTLF_LLM_MODEL",
    "INSTRUCTLF_EMBEDDING_CACHE",
    "OPENAI_BASE_URL",
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
)


def optional_int(text: str) -> int | None:
    """An integer, or `none` for "leave the setting out" (a reasoning model rejects `max_tokens`)."""
    return None if text.strip().lower() == "none" else int(text)


# Operators tune the LLM client per deployment (a slow local server, a strict rate limit) without run config.
# The budget: a cap on a run's requests (checked before the first call) and a price for `instructlf plan`.
LLM_TUNING_VARIABLES: dict[str, tuple[str, Callable[[str], object]]] = {
    "INSTRUCTLF_LLM_CONCURRENCY": ("concurrency", int),
    "INSTRUCTLF_LLM_TIMEOUT_S": ("timeout_s", float),
    "INSTRUCTLF_LLM_MAX_RETRIES": ("max_retries", int),
    "INSTRUCTLF_LLM_BACKOFF_S": ("backoff_base_s", float),
    "INSTRUCTLF_LLM_MAX_CALLS": ("max_calls", int),
    "INSTRUCTLF_LLM_MAX_TOKENS": ("max_tokens", optional_int),
    "INSTRUCTLF_LLM_PRICE_PER_MTOK": ("price_per_mtok", float),
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
        "cache_dir": join_location(default_storage_root(), "llm_cache"),
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
                expected = "an integer or none" if kind is optional_int else f"a {kind.__name__}"
                raise ValueError(f"{variable} is {os.environ[variable]!r}; expected {expected}") from None
    return ProposerResource(**settings)


def executor_from_environment() -> dg.ExecutorDefinition:
    """The step executor from INSTRUCTLF_EXECUTOR; the optional executors' packages are imported only when chosen.

    - multiprocess (default): one process per step on this machine.
    - in_process: every step in the run's own process (what the CLI uses unless told otherwise).
    - dask: steps as Dask tasks; DASK_SCHEDULER_ADDRESS joins an existing cluster, otherwise a LocalCluster of
      INSTRUCTLF_DASK_WORKERS (1) single-threaded worker processes is started for the run.
    - k8s: one Kubernetes Job per step (dagster-k8s); image and namespace from the K8sRunLauncher unless
      INSTRUCTLF_K8S_IMAGE / INSTRUCTLF_K8S_NAMESPACE are set; INSTRUCTLF_K8S_STEP_CONFIG (JSON) for every pod.
    - celery: steps as Celery tasks (dagster-celery) on DAGSTER_CELERY_BROKER_URL / DAGSTER_CELERY_BACKEND_URL.
    """
    name = os.environ.get(EXECUTOR_ENV, "multiprocess")
    if name not in EXECUTORS:
        raise ValueError(f"{EXECUTOR_ENV} is {name!r}; expected one of {', '.join(EXECUTORS)}")
    if name == "multiprocess":
        return dg.multiprocess_executor
    if name == "in_process":
        return dg.in_process_executor
    if name == "dask":
        from resources.dask_executor import record_safe_dask_executor

        address = os.environ.get("DASK_SCHEDULER_ADDRESS")
        workers = int(os.environ.get("INSTRUCTLF_DASK_WORKERS", "1"))
        cluster = (
            {"existing": {"address": address}}
            if address
            else {"local": {"n_workers": workers, "threads_per_worker": 1, "processes": True}}
        )
        return record_safe_dask_executor.configured({"cluster": cluster}, name="dask")
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        config: dict[str, object] = {
            "max_concurrent": int(os.environ.get("INSTRUCTLF_K8S_MAX_CONCURRENT", "4")),
            "env_vars": [variable for variable in FORWARDED_TO_STEPS if os.environ.get(variable)],
        }
        if os.environ.get("INSTRUCTLF_K8S_ENV_SECRETS"):
            config["env_secrets"] = os.environ["INSTRUCTLF_K8S_ENV_SECRETS"].split(",")
        if os.environ.get("INSTRUCTLF_K8S_IMAGE"):
            config["job_image"] = os.environ["INSTRUCTLF_K8S_IMAGE"]
        if os.environ.get("INSTRUCTLF_K8S_NAMESPACE"):
            config["job_namespace"] = os.environ["INSTRUCTLF_K8S_NAMESPACE"]
        if os.environ.get("INSTRUCTLF_K8S_STEP_CONFIG"):  # e.g. resource requests, node selectors, GPU limits
            config["step_k8s_config"] = json.loads(os.environ["INSTRUCTLF_K8S_STEP_CONFIG"])
        return k8s_job_executor.configured(config, name="k8s")
    from dagster_celery import celery_executor

    celery_config = {
        key: os.environ[variable]
        for key, variable in (("broker", "DAGSTER_CELERY_BROKER_URL"), ("backend", "DAGSTER_CELERY_BACKEND_URL"))
        if os.environ.get(variable)
    }
    return celery_executor.configured(celery_config, name="celery")


def resources_from_environment() -> dict[str, object]:
    """Artifacts and the LLM cache under one storage root (INSTRUCTLF_STORAGE: a path or an fsspec URL)."""
    return {
        "io_manager": InstructLFIOManager(base_dir=default_storage_root()),
        "encoder": EncoderResource(embedding_cache=embedding_cache_location()),
        "proposer": proposer_from_environment(),
    }


def embedding_cache_location() -> str | None:
    """$INSTRUCTLF_EMBEDDING_CACHE (a local directory, or `off`), else `embedding_cache/` beside the artifacts (a
    local directory standing in for it when they live on an object store: the cache is per machine)."""
    explicit = os.environ.get(EMBEDDING_CACHE_ENV)
    if explicit:
        if "://" in explicit and not explicit.startswith("file://"):
            raise ValueError(f"{EMBEDDING_CACHE_ENV} is {explicit!r}: the embedding cache is a local directory")
        return None if explicit.lower() == "off" else explicit.removeprefix("file://")
    return str(local_scratch(default_storage_root(), "embedding_cache"))


defs = dg.Definitions(
    assets=[*SOURCES, *PIPELINE, scored_documents],
    jobs=[pipeline_job, observe_job, *JOBS],
    schedules=SCHEDULES,
    sensors=SENSORS,
    executor=executor_from_environment(),
    resources=resources_from_environment(),
)


def reconstructable_pipeline() -> dg.JobDefinition:
    """The pipeline job as this module builds it from the environment: what executor workers reconstruct."""
    return defs.resolve_job_def(PIPELINE_JOB)
