"""Automatic retry of Failed records (flowlink/retry.py), every hour.

`select` finds, for each live workflow whose environment is due (hourly, or daily), the touchpoints with eligible
records (Failed, fewer tries than the maximum, waited long enough) and records a resync request of kind 'retry'
for each; `trigger` starts one run of the workflow's DAG per request with conf {"resync_id": N, "retry": true}
and run id `retry__<time>__<N>`, so retries show in the Airflow UI and in the snapshots; `started` notes each
run on its request (or takes the request back if its run could not be started) and fails this run if any
could not be started.

A retry run is a run of the workflow's own DAG, which has max_active_runs=1: a retry queues behind a running
sync and a scheduled sync waits for a running retry, so a touchpoint's sync and its retry never run at once.

Trigger with conf {"force": true} to retry now, whatever hourly/daily says (the wait and the maximum still hold).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, cast

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Param, TriggerRule, get_current_context, task

if TYPE_CHECKING:
    from flowlink.retry import PlannedRetry

with DAG(
    dag_id="flowlink_retry",
    description="Retries the Failed records of every live Flowlink workflow, as runs limited to them",
    schedule="@hourly",
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    # No task retries: a repeated `select` would record its requests twice, a repeated trigger finds its run
    # already there; the next hourly pass picks up whatever this one missed.
    default_args={"owner": "flowlink", "retries": 0},
    tags=["flowlink"],
    params={"force": Param(False, type="boolean", description="retry now, whatever hourly/daily says")},
    doc_md=__doc__,
) as dag:

    @task
    def select() -> list[PlannedRetry]:
        """Record a retry request per touchpoint with eligible records; what to trigger."""
        from flowlink import retry
        from flowlink.store import Store

        force = bool(get_current_context()["params"].get("force"))
        store = Store.open()
        try:
            return retry.plan(store, force=force)
        finally:
            store.dispose()

    @task
    def arguments(planned: list[PlannedRetry]) -> list[dict[str, Any]]:
        """One TriggerDagRunOperator per planned retry run."""
        from flowlink import retry

        return retry.trigger_kwargs(planned)

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def started(planned: list[PlannedRetry]) -> int:
        """Note each started run on its request; take back the requests whose run could not be started."""
        from flowlink import retry
        from flowlink.errors import FlowlinkError
        from flowlink.store import Store

        pulled = get_current_context()["ti"].xcom_pull(task_ids="trigger", key="trigger_run_id")
        triggered = [pulled] if isinstance(pulled, str) else [r for r in pulled or [] if r]
        store = Store.open()
        try:
            failed = retry.settle(store, planned or [], triggered)
        finally:
            store.dispose()
        if failed:
            raise FlowlinkError(
                "could not start the retry runs of "
                + ", ".join(f"{p['workflow']}.{p['touchpoint']} (resync #{p['resync_id']}, taken back)" for p in failed)
            )
        return len(triggered)

    planned = cast("list[PlannedRetry]", select())  # an XComArg: each task gets the list itself when it runs
    triggers = TriggerDagRunOperator.partial(
        task_id="trigger",
        logical_date=None,
        wait_for_completion=False,
        openlineage_inject_parent_info=False,
    ).expand_kwargs(arguments(planned))
    triggers >> started(planned)
