"""Flowlink's alert checks (flowlink/alerts/). Parsing imports only the Task SDK; the store loads when a task runs.

* `flowlink_alerts`, every 5 minutes: agents silent longer than their environment's disconnect_alert_minutes, and
  scheduled workflow runs that could not start because the previous run was still running (the schedule's ticks
  during each recent run, from the snapshot, asked of Airflow through the Task SDK: is there a run for this tick;
  a task has no metadata database access).
* `flowlink_daily_summary`, daily at 00:00 UTC: per live workflow the 24 hours before, to the channels that asked
  for a daily summary.
Each alert goes out once per channel (alerts_sent), however often the checks run.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, task

if TYPE_CHECKING:
    from flowlink.store import Store


def _dag(dag_id: str, description: str, schedule: str | dt.timedelta) -> DAG:
    """One of the two alert DAGs: never caught up, one run at a time, unpaused from the start."""
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        is_paused_upon_creation=False,
        max_active_runs=1,
        tags=["flowlink"],
        default_args={"owner": "flowlink", "retries": 0},
        doc_md=__doc__,
    )


def _store() -> Store:
    from flowlink.store import Store

    return Store.open()


with _dag(
    "flowlink_alerts",
    "Flowlink alerts: disconnected agents, scheduled runs that could not start",
    dt.timedelta(minutes=5),
) as alerts_dag:

    @task(task_id="agents")
    def agents() -> int:
        from flowlink import alerts

        store = _store()
        try:
            return len(alerts.check_agents(store))
        finally:
            store.dispose()

    @task(task_id="blocked_runs")
    def blocked_runs(ti: Any = None) -> int:
        from flowlink import alerts

        def paused(dag_id: str) -> bool:
            return bool(ti.get_dag(dag_id).is_paused)  # the Task SDK asks the api-server

        def count_runs(dag_id: str, **criteria: Any) -> int:
            return int(ti.get_dr_count(dag_id=dag_id, **criteria))

        store = _store()
        try:
            return len(
                alerts.check_blocked_runs(store, alerts.scheduled_workflows(), paused=paused, count_runs=count_runs)
            )
        finally:
            store.dispose()

    agents()
    blocked_runs()


with _dag(
    "flowlink_daily_summary",
    "Flowlink daily summary per workflow: successes, successful retries, failures in the last 24 hours",
    "@daily",
) as summary_dag:

    @task(task_id="summaries")
    def summaries(logical_date: dt.datetime | None = None) -> int:
        from flowlink import alerts

        store = _store()
        try:
            return len(alerts.send_daily_summaries(store, alerts.live_workflows(), until=logical_date))
        finally:
            store.dispose()

    summaries()
