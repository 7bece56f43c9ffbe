"""dagster-dask's executor with its task submission adapted to current Dask (dagster-dask 0.29 + dask >= 2025).

Current Dask walks every tuple passed to `Client.submit` looking for futures, and Dagster's records (the run,
its op-concurrency info) are tuples that forbid iteration, so upstream's `submit(fn, deps, run, ...)` fails
before any step starts ("Iteration is not allowed on `@record` RunOpConcurrency"). Here everything but the
dependency futures is bound into a `functools.partial`, which Dask passes through untouched. Steps still run
as upstream runs them: one Dask task per step, `execute_plan` on the worker against the same instance.

Only the two cluster kinds this project configures are supported: `existing` (an address) and `local`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial

import dagster as dg
from dagster_dask.executor import (
    DaskExecutor,
    dask_executor,
    get_dask_resource_requirements,
    query_on_dask_worker,
)

from instructlf_assets.dagster_internals import iterate_with_context, raise_execution_interrupts

# Dask cannot size Dagster's step events for its memory accounting; it says so once per result, harmlessly.
logging.getLogger("distributed.sizeof").setLevel(logging.ERROR)


class RecordSafeDaskExecutor(DaskExecutor):
    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        import dask.distributed

        if not plan_context.instance.is_persistent:
            raise dg.DagsterInvariantViolationError("Dask execution requires a persistent DagsterInstance")
        if self.cluster_type == "existing":
            cluster = self.cluster_configuration["address"]
            owned = None
        elif self.cluster_type == "local":
            owned = cluster = dask.distributed.LocalCluster(**self.build_dict(plan_context.job_name))
        else:
            raise dg.DagsterInvariantViolationError(
                f"cluster type {self.cluster_type!r} is not supported here; use 'existing' (an address) or 'local'"
            )
        try:
            with dask.distributed.Client(cluster) as client:
                yield from self._submit_and_collect(client, plan_context, execution_plan)
        finally:
            if owned is not None:
                owned.close()

    def _submit_and_collect(self, client, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        import dask.distributed

        futures_by_step = {}
        for level in execution_plan.get_steps_to_execute_by_level():
            for step in level:
                dependencies = [
                    futures_by_step[key] for step_input in step.step_inputs for key in step_input.dependency_keys
                ]
                run_step = partial(
                    _run_step,
                    recon_job=plan_context.reconstructable_job,
                    dagster_run=plan_context.dagster_run,
                    run_config=plan_context.run_config,
                    step_keys=[step.key],
                    instance_ref=plan_context.instance.get_ref(),
                    known_state=execution_plan.known_state,
                )
                futures_by_step[step.key] = client.submit(
                    run_step,
                    dependencies,
                    key=f"{plan_context.job_name}.{step.key}",
                    resources=get_dask_resource_requirements(step.tags),
                )
        completed = dask.distributed.as_completed(list(futures_by_step.values()), with_results=True)
        for _future, events in iterate_with_context(raise_execution_interrupts, completed):
            yield from events


def _run_step(dependencies, **kwargs):
    """`dependencies` only sequences the task after its upstream steps' tasks; their events are not needed."""
    return query_on_dask_worker(dependencies, **kwargs)


@dg.executor(
    name="dask",
    requirements=dg.multiple_process_executor_requirements(),
    config_schema=dask_executor.config_schema,
)
def record_safe_dask_executor(init_context) -> RecordSafeDaskExecutor:
    """The Dask executor: `cluster: {existing: {address: ...}}` or `cluster: {local: {...LocalCluster kwargs}}`."""
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return RecordSafeDaskExecutor(cluster_type, cluster_configuration)
